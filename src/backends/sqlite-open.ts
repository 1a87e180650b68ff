/**
 * Opening a SQLite file for the sqlite: backend: better-sqlite3 with the project's pragmas, folders
 * made one level at a time, and SQLite's errors as typed registry errors (split from sqlite.ts).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import DatabaseT from 'better-sqlite3';
import { InvalidInputError, NoRegistryError, RegistryError, UnreachableError } from './contract.js';

/** Default `mmap_size`: lookups on a large store read pages in place instead of copying them. */
const MMAP_BYTES = 2 * 1024 ** 3;

/** better-sqlite3 (this module is itself loaded only when a sqlite: backend is opened). */
export function loadBetterSqlite(): typeof DatabaseT {
  return DatabaseT;
}

/**
 * Open a database file with the project's pragmas; maps open failures to typed errors.
 * `create: false` (and `readonly`) never creates anything: a missing file is `NoRegistryError`.
 */
export function openDatabase(
  path: string,
  opts: { readonly?: boolean; busyTimeout?: number; create?: boolean; mmapBytes?: number } = {},
): DatabaseT.Database {
  const Database = loadBetterSqlite();
  const file = resolve(path);
  const create = !opts.readonly && opts.create !== false;
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(file);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory())
    throw new InvalidInputError(
      `${file} is a directory, not a database file: give a file path, e.g. sqlite:${file}/registry.db`,
    );
  // An empty file (touch, or a creator that has not written yet) holds no registry: a reader leaves it so.
  if ((!st || st.size === 0) && !create) throw new NoRegistryError(file);
  if (!st) makeFolders(dirname(file), file);
  let db: DatabaseT.Database;
  try {
    db = new Database(file, {
      readonly: !!opts.readonly,
      fileMustExist: !create,
      nativeBinding: nativeBindingPath(),
    });
  } catch (cause) {
    if (/better_sqlite3\.node|bindings|NODE_MODULE_VERSION|invalid ELF/i.test(String((cause as Error).message))) {
      throw new UnreachableError(
        `better-sqlite3's native addon is missing or was built for another Node.js: run \`npm rebuild better-sqlite3\``,
        { cause, recoverable: false },
      );
    }
    // Removed between the stat and the open: still nothing to read.
    if (!create && (cause as { code?: string }).code === 'SQLITE_CANTOPEN' && !existsSync(file))
      throw new NoRegistryError(file, { cause });
    throw mapSqliteError(cause, file);
  }
  try {
    db.pragma(`busy_timeout = ${opts.busyTimeout ?? 5000}`);
    // Touch the file header now so a corrupt or foreign file fails here, not mid-command.
    db.pragma('schema_version');
    db.pragma(
      `mmap_size = ${Number.isSafeInteger(opts.mmapBytes) && opts.mmapBytes! >= 0 ? opts.mmapBytes : MMAP_BYTES}`,
    );
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
  } catch (cause) {
    db.close();
    throw mapSqliteError(cause, file);
  }
  return db;
}

/**
 * `mkdir -p` one level at a time from the nearest folder that exists, failing at the first refusal.
 * (Node's recursive mkdirSync retries forever where mkdir says ENOENT under an existing parent,
 * as /proc does: `sqlite:/proc/foo/r.db` spun at 90 % CPU.)
 */
function makeFolders(dir: string, file: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (cause) {
      // Another process made it meanwhile: fine.
      if ((cause as NodeJS.ErrnoException).code === 'EEXIST' && statSync(d).isDirectory()) continue;
      throw new UnreachableError(
        `cannot create the folder ${d} for ${file} (${(cause as Error).message}): check the path`,
        { cause, recoverable: false },
      );
    }
  }
}

/** better-sqlite3 errors → typed registry errors (RegistryErrors pass through). */
export function mapSqliteError(cause: unknown, file: string): Error {
  if (cause instanceof RegistryError) return cause;
  const code = (cause as { code?: string }).code ?? '';
  const msg = (cause as Error).message ?? String(cause);
  const is = (c: string) => code === c || code.startsWith(`${c}_`); // extended codes: SQLITE_IOERR_WRITE…
  // Damage inside a SQLite file is the store's state, not the user's input: exit 6, as the integrity
  // check before a full read reports it (ProcessRegistry.assertIntact); a file that is not SQLite
  // at all is a wrong path: exit 2.
  if (is('SQLITE_CORRUPT') || /malformed/i.test(msg)) {
    return new UnreachableError(
      `${file} is damaged (${msg}): nothing was read; restore it from a dump or a copy, or point --backend at another file`,
      { cause, recoverable: false, details: { path: file, damaged: true } },
    );
  }
  if (is('SQLITE_NOTADB') || /not a database/i.test(msg)) {
    return new InvalidInputError(
      `${file} is not a usable SQLite database (${msg}): restore it from a dump or point --backend at another file`,
      { cause },
    );
  }
  if (is('SQLITE_FULL') || /ENOSPC|disk is full|database or disk is full/i.test(msg)) {
    return new UnreachableError(`no space left to write ${file} (${msg}): free space on its disk, then retry`, {
      cause,
      details: { path: file },
    });
  }
  if (is('SQLITE_BUSY') || is('SQLITE_LOCKED')) {
    return new UnreachableError(
      `${file} is locked by another process that is writing (${msg}): retry when it is done, or raise backendOpts.busyTimeout (ms)`,
      { cause, details: { path: file } },
    );
  }
  if (
    is('SQLITE_CANTOPEN') ||
    is('SQLITE_PERM') ||
    is('SQLITE_READONLY') ||
    is('SQLITE_IOERR') ||
    /EACCES|permission/i.test(msg)
  ) {
    return new UnreachableError(`cannot open ${file} (${msg}): check that it exists and is readable and writable`, {
      cause,
      recoverable: false,
    });
  }
  return cause instanceof Error ? cause : new Error(msg);
}

/**
 * The compiled addon's path, so better-sqlite3 skips the `bindings` file search at start-up: the
 * node_modules folders above this module, as Node searches them (a few stats; require.resolve's
 * first call costs a CLI start ~2 ms), else require.resolve.
 */
export function nativeBindingPath(): string | undefined {
  const addon = join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, addon))) return join(dir, addon);
    if (dirname(dir) === dir) break;
  }
  try {
    return createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
  } catch {
    return undefined;
  }
}
