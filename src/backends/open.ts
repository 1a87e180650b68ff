/**
 * Backend URL → backend. Each scheme is loaded lazily, so a `lookup` on SQLite never loads the
 * etcd client. Adding a backend = one row in `schemes` and one file beside this one.
 */
import os from 'node:os';
import { join } from 'node:path';
import { type Backend, type BackendContext, type BackendFactory, InvalidInputError } from './contract.js';

export interface SchemeInfo {
  /** URL scheme without the colon. */
  scheme: string;
  /** URL shape for help. */
  form: string;
  description: string;
  /** Loads the factory (lazy import). */
  load(): Promise<BackendFactory>;
  /**
   * The location is a file path: relative paths are resolved (config, journal), and a missing
   * file means no store (read-only commands, completion, rollback checks).
   */
  file?: boolean;
  /** The store lives in the opening process only: a new process starts empty. */
  inProcess?: boolean;
  /** backendOpts that open the store for reading only (health checks), where the backend has them. */
  readonlyOpts?: Record<string, unknown>;
  /** A factory whose store is created by its first write (the REPL on a new file), where the backend has one. */
  loadOnFirstWrite?(): Promise<BackendFactory>;
}

// Literal import paths, so a bundler (the light path's bundle, scripts/build-lite.ts) finds each backend.
const lazy = (load: () => Promise<object>, name: string) => async (): Promise<BackendFactory> => {
  const f = ((await load()) as Record<string, BackendFactory>)[name];
  if (typeof f !== 'function') throw new Error(`the backend module does not export ${name}`);
  return f;
};

export const schemes: SchemeInfo[] = [
  {
    scheme: 'memory',
    form: 'memory:',
    description: 'in-process maps (ETS-like); gone when the process exits',
    load: lazy(() => import('./memory.js'), 'createMemoryBackend'),
    inProcess: true,
  },
  {
    scheme: 'sqlite',
    form: 'sqlite:PATH',
    description: 'embedded SQLite file, WAL (the default)',
    load: lazy(() => import('./sqlite.js'), 'createSqliteBackend'),
    file: true,
    readonlyOpts: { readonly: true },
    loadOnFirstWrite: lazy(() => import('./sqlite.js'), 'createSqliteBackendOnFirstWrite'),
  },
  {
    scheme: 'http',
    form: 'http://HOST:PORT',
    description: 'a remote registry node (`registry serve`)',
    load: lazy(() => import('./remote.js'), 'createRemoteBackend'),
  },
  {
    scheme: 'https',
    form: 'https://HOST:PORT',
    description: 'a remote registry node over TLS',
    load: lazy(() => import('./remote.js'), 'createRemoteBackend'),
  },
  {
    scheme: 'etcd',
    form: 'etcd://H:P[,H:P…][/prefix]',
    description: 'an etcd cluster: leases, unique names by txn, watch',
    load: lazy(() => import('./etcd.js'), 'createEtcdBackend'),
  },
  {
    scheme: 'hybrid',
    form: 'hybrid: (backendOpts {primary, backup})',
    description: 'two backends with the legacy Registry+ETS logic (migration phase 2)',
    load: lazy(() => import('./hybrid.js'), 'createHybridBackend'),
  },
  {
    scheme: 'legacy',
    form: 'legacy:PATH',
    description: 'a legacy dual-storage SQLite file, legacy semantics',
    load: lazy(() => import('./legacy.js'), 'createLegacyBackend'),
    file: true,
  },
];

/** `$XDG_DATA_HOME/registry/registry.db` (XDG default `~/.local/share`). */
export function defaultDatabasePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME || join(env.HOME || os.homedir(), '.local', 'share');
  return join(base, 'registry', 'registry.db');
}

export function defaultBackendUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `sqlite:${defaultDatabasePath(env)}`;
}

/** Split a backend URL into its scheme row and the rest. */
export function parseBackendUrl(url: string): { info: SchemeInfo; location: string } {
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/is.exec(url.trim());
  const known = schemes.map((s) => s.form).join(', ');
  if (!m) throw new InvalidInputError(`invalid backend ${JSON.stringify(url)}: use one of ${known}`);
  const [, name = '', rest = ''] = m; // both groups always participate in a match
  const scheme = name.toLowerCase();
  const info = schemes.find((s) => s.scheme === scheme);
  if (!info)
    throw new InvalidInputError(`unknown backend scheme "${scheme}:" in ${JSON.stringify(url)}: use one of ${known}`);
  let location = rest;
  if (scheme === 'sqlite' || scheme === 'legacy') location = location.replace(/^\/\/(?=\/)/, ''); // sqlite:///abs/path
  if (scheme === 'http' || scheme === 'https' || scheme === 'etcd') location = url.trim();
  return { info, location };
}

export interface OpenBackendOptions {
  /** Called with the resolved URL (for diagnostics). */
  onResolve?(url: string): void;
}

/** Open the backend a URL names (default: the SQLite default file). */
export async function openBackend(
  url: string | undefined,
  opts: Record<string, unknown>,
  ctx: BackendContext,
  o: OpenBackendOptions = {},
): Promise<Backend> {
  const resolved = url ?? defaultBackendUrl();
  o.onResolve?.(resolved);
  const { info, location } = parseBackendUrl(resolved);
  let factory: BackendFactory;
  try {
    factory = await info.load();
  } catch (cause) {
    if (
      (cause as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      String((cause as Error).message).includes(`/backends/`)
    ) {
      throw new InvalidInputError(`the ${info.scheme}: backend is not available in this build of procreg`, { cause });
    }
    throw cause;
  }
  return factory(location, opts, ctx);
}
