/**
 * Config loading (not CLI-specific: the REPL, migrations and library users read profiles too).
 * Which backend a command talks to (design §2): `--backend`, then `--profile`, then
 * `REGISTRY_BACKEND`, then `REGISTRY_PROFILE`, then the config file's `default` profile, then the
 * SQLite default. The config file is `registry.config.json` in the working directory or a parent,
 * else `$XDG_CONFIG_HOME/registry/config.json`, or the file `--config` names.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InvalidInputError } from '../backends/contract.js';
import { defaultBackendUrl } from '../backends/open.js';
import { writeFileAtomic } from '../core/atomic-file.js';

export interface Profile {
  backend: string;
  backendOpts?: Record<string, unknown>;
  namespace?: string;
  node?: string;
}

export interface ConfigFile {
  default?: string;
  profiles?: Record<string, Profile>;
}

export interface Resolved {
  backend: string;
  backendOpts: Record<string, unknown>;
  /** Where the choice came from: flag, profile NAME, env, default. */
  source: string;
  profile?: string;
  namespace?: string;
  node?: string;
  configPath?: string;
}

export interface Selection {
  backend?: string;
  profile?: string;
  config?: string;
}

/** The config file that applies here, or undefined. */
export function findConfig(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): string | undefined {
  if (explicit) {
    if (!existsSync(explicit)) throw new InvalidInputError(`config file ${explicit} does not exist: check --config`);
    return resolve(explicit);
  }
  if (env.REGISTRY_CONFIG) {
    if (!existsSync(env.REGISTRY_CONFIG))
      throw new InvalidInputError(`config file ${env.REGISTRY_CONFIG} (REGISTRY_CONFIG) does not exist`);
    return resolve(env.REGISTRY_CONFIG);
  }
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const f = join(dir, 'registry.config.json');
    if (existsSync(f)) return f;
    if (dirname(dir) === dir) break;
  }
  const xdg = env.XDG_CONFIG_HOME || join(env.HOME || os.homedir(), '.config');
  const f = join(xdg, 'registry', 'config.json');
  return existsSync(f) ? f : undefined;
}

export function loadConfig(path: string): ConfigFile {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new InvalidInputError(
      `config file ${path} is not valid JSON (${(cause as Error).message}): fix it or pass --backend`,
      { cause },
    );
  }
  if (!data || typeof data !== 'object' || Array.isArray(data))
    throw new InvalidInputError(`config file ${path} must hold a JSON object with "profiles"`);
  const c = data as ConfigFile;
  if (c.profiles !== undefined && (typeof c.profiles !== 'object' || Array.isArray(c.profiles))) {
    throw new InvalidInputError(`config file ${path}: "profiles" must be an object of name → {backend, backendOpts}`);
  }
  for (const [name, p] of Object.entries(c.profiles ?? {})) {
    if (!p || typeof p.backend !== 'string')
      throw new InvalidInputError(`config file ${path}: profile "${name}" needs a "backend" URL string`);
  }
  return c;
}

/** Relative sqlite/legacy paths in a config file are relative to the file. */
function anchor(url: string, configPath: string): string {
  const [, scheme, path] = /^(sqlite|legacy):(?!\/)(.+)$/.exec(url) ?? [];
  return scheme !== undefined && path !== undefined ? `${scheme}:${resolve(dirname(configPath), path)}` : url;
}

function fromProfile(name: string, configPath: string | undefined, source: string): Resolved {
  if (!configPath)
    throw new InvalidInputError(
      `profile "${name}" requested but no config file found: create registry.config.json or pass --config`,
    );
  const cfg = loadConfig(configPath);
  const p = cfg.profiles?.[name];
  if (!p) {
    const known = Object.keys(cfg.profiles ?? {});
    throw new InvalidInputError(
      `no profile "${name}" in ${configPath}${known.length ? `: known profiles are ${known.join(', ')}` : ''}`,
    );
  }
  return {
    backend: anchor(p.backend, configPath),
    backendOpts: p.backendOpts ?? {},
    source,
    profile: name,
    namespace: p.namespace,
    node: p.node,
    configPath,
  };
}

export function resolveBackend(sel: Selection, env: NodeJS.ProcessEnv = process.env): Resolved {
  if (sel.backend) return { backend: sel.backend, backendOpts: {}, source: 'flag --backend' };
  if (sel.profile) return fromProfile(sel.profile, findConfig(sel.config, env), `profile ${sel.profile} (--profile)`);
  if (env.REGISTRY_BACKEND) return { backend: env.REGISTRY_BACKEND, backendOpts: {}, source: 'env REGISTRY_BACKEND' };
  const configPath = findConfig(sel.config, env);
  if (env.REGISTRY_PROFILE)
    return fromProfile(env.REGISTRY_PROFILE, configPath, `profile ${env.REGISTRY_PROFILE} (REGISTRY_PROFILE)`);
  if (configPath) {
    const cfg = loadConfig(configPath);
    if (cfg.default) return fromProfile(cfg.default, configPath, `profile ${cfg.default} (default in ${configPath})`);
  }
  return { backend: defaultBackendUrl(env), backendOpts: {}, source: 'default' };
}

// --- writing the config file (config commands, migrations) -----------------------------------

/** The user-wide config file: `$XDG_CONFIG_HOME/registry/config.json`. */
export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || os.homedir(), '.config'), 'registry', 'config.json');
}

/**
 * The file a config write goes to: the one `--config` names (it may not exist yet), else the file
 * reads would use, else `registry.config.json` in the working directory.
 */
export function configTarget(explicit?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (explicit) return resolve(cwd, explicit);
  if (env.REGISTRY_CONFIG) return resolve(cwd, env.REGISTRY_CONFIG);
  return findConfig(undefined, env, cwd) ?? join(resolve(cwd), 'registry.config.json');
}

/** Write a config file whole or not at all: a temporary file beside it, fsync, rename. */
export function saveConfig(path: string, cfg: ConfigFile): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException;
    throw new InvalidInputError(
      `cannot write config file ${path}: ${e.code ?? e.message}: check the path and its permissions`,
      { cause },
    );
  }
}
