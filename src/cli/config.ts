/**
 * The CLI's config helpers (profile names, `--opt` pairs, how `config set` stores a URL). Reading
 * and resolving registry.config.json and its profiles lives in src/config/profiles.ts, re-exported
 * here for the commands.
 */
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { InvalidInputError } from '../backends/contract.js';
import { parseBackendUrl } from '../backends/open.js';

export * from '../config/profiles.js';

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A profile name: letters, digits, `.`, `_`, `-`, up to 64 characters. */
export function checkProfileName(name: string): string {
  if (!PROFILE_NAME.test(name))
    throw new InvalidInputError(
      `invalid profile name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-" (up to 64, starting with a letter or digit)`,
    );
  return name;
}

/**
 * A backend URL as a profile stores it: the scheme must be known; a relative `sqlite:`/`legacy:`
 * path given on the command line means relative to the working directory, and is stored relative
 * to the config file (which is how profiles are read back, see `anchor`).
 */
export function profileBackend(url: string, configPath: string, cwd = process.cwd()): string {
  const { info, location } = parseBackendUrl(url);
  if (info.file && !isAbsolute(location)) {
    const rel = relative(dirname(configPath), resolve(cwd, location));
    return `${info.scheme}:${rel.startsWith('..') ? resolve(cwd, location) : `./${rel}`}`;
  }
  return url.trim();
}

/** `k=v` option pairs; values are JSON when they parse (numbers, booleans, null), else strings. */
export function parseOpts(pairs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    const k = i > 0 ? pair.slice(0, i).trim() : '';
    if (!k || k === '__proto__')
      throw new InvalidInputError(`invalid --opt ${JSON.stringify(pair)}: use --opt key=value, e.g. --opt leaseTtl=10`);
    const raw = pair.slice(i + 1);
    let v: unknown = raw;
    try {
      v = JSON.parse(raw);
    } catch {
      // a plain string
    }
    out[k] = v;
  }
  return out;
}
