/**
 * The sqlite: backend's schema and statements (split from sqlite.ts): creation under the write
 * lock, the checks that refuse foreign files, and every statement, prepared on first use.
 */
import type DatabaseT from 'better-sqlite3';
import { InvalidInputError, NoRegistryError } from './contract.js';

/** The columns and key of `registrations` (the bench's plain baseline table uses the same). */
export const REGISTRATIONS_TABLE = `(
          namespace     TEXT    NOT NULL,
          key           TEXT    NOT NULL,
          pid           INTEGER NOT NULL CHECK (pid > 0),
          node          TEXT    NOT NULL,
          meta          TEXT    NOT NULL DEFAULT '{}',
          registered_at INTEGER NOT NULL,
          updated_at    INTEGER NOT NULL,
          pid_start     INTEGER,
          PRIMARY KEY (namespace, key)
        ) WITHOUT ROWID`;

export const SQLITE_SCHEMA_VERSION = 1;
export const COLS = 'namespace, key, pid, node, meta, registered_at, updated_at, pid_start';

export type Statements = Record<keyof typeof SQL, DatabaseT.Statement>;

/** Every statement of the backend, by name. */
const SQL = {
  upsert: `INSERT INTO registrations (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (namespace, key) DO UPDATE SET pid = excluded.pid, node = excluded.node, meta = excluded.meta,
         registered_at = excluded.registered_at, updated_at = excluded.updated_at, pid_start = excluded.pid_start
       WHERE procreg_replace(${COLS.split(', ')
         .map((c) => `registrations.${c}`)
         .join(', ')})`,
  get: `SELECT ${COLS} FROM registrations WHERE namespace = ? AND key = ?`,
  del: 'DELETE FROM registrations WHERE namespace = ? AND key = ?',
  delIf: `DELETE FROM registrations WHERE namespace = @ns AND key = @key AND (@pid IS NULL OR pid = @pid) AND (@at IS NULL OR registered_at = @at) AND (@node IS NULL OR node = @node)`,
  page: `SELECT ${COLS} FROM registrations WHERE namespace = ? AND key > ? ORDER BY key LIMIT ?`,
  pageFirst: `SELECT ${COLS} FROM registrations WHERE namespace = ? ORDER BY key LIMIT ?`,
  setMeta: 'UPDATE registrations SET meta = ?, updated_at = ? WHERE namespace = ? AND key = ?',
  count: 'SELECT count(*) AS n FROM registrations WHERE namespace = ?',
  countAll: 'SELECT count(*) AS n FROM registrations',
  firstNamespace: 'SELECT namespace FROM registrations ORDER BY namespace LIMIT 1',
  nextNamespace: 'SELECT namespace FROM registrations WHERE namespace > ? ORDER BY namespace LIMIT 1',
  clear: 'DELETE FROM registrations WHERE namespace = ?',
  processes:
    'SELECT pid, pid_start AS pidStart, count(*) AS count FROM registrations WHERE node = ? GROUP BY pid, pid_start',
  removeProcess: 'DELETE FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ?',
  allProcesses: 'SELECT node, pid, pid_start, count(*) AS n FROM registrations GROUP BY node, pid, pid_start',
  // Skip-scan of registrations_by_process for healthCheck: each is one index seek.
  firstNode: 'SELECT node FROM registrations ORDER BY node LIMIT 1',
  nextNode: 'SELECT node FROM registrations WHERE node > ? ORDER BY node LIMIT 1',
  firstProc: 'SELECT pid, pid_start FROM registrations WHERE node = ? ORDER BY node, pid, pid_start LIMIT 1',
  // Not one row-value seek `(pid, pid_start) > (?, ?)`: SQLite steps through the equal entries.
  nextStart:
    'SELECT pid_start FROM registrations WHERE node = ? AND pid = ? AND pid_start > ? ORDER BY node, pid, pid_start LIMIT 1',
  nextPid: 'SELECT pid, pid_start FROM registrations WHERE node = ? AND pid > ? ORDER BY node, pid, pid_start LIMIT 1',
  countProc: 'SELECT count(*) FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ?',
  scanNs: `SELECT ${COLS} FROM registrations WHERE namespace = ? ORDER BY key`,
  info: 'SELECT value FROM registry_info WHERE name = ?',
  setInfo:
    'INSERT INTO registry_info (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
};

/** Statements, each prepared on first use (a one-shot `lookup` prepares one, not twenty). */
export function prepareStatements(db: DatabaseT.Database): Statements {
  return lazyStatements(db, SQL);
}

/**
 * Create or upgrade the schema; refuse files that hold something else. Creation runs under the
 * write lock (BEGIN IMMEDIATE) and looks at `user_version` again once it holds it, so processes
 * opening a new file at the same moment create the schema once (the others wait, then find it).
 */
export function migrateSchema(db: DatabaseT.Database, file: string, create: boolean): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SQLITE_SCHEMA_VERSION) {
    throw new InvalidInputError(
      `${file} has schema version ${version}, newer than this procreg (${SQLITE_SCHEMA_VERSION}): upgrade procreg`,
    );
  }
  if (version === SQLITE_SCHEMA_VERSION) return checkSchema(db, file);
  // Two reads, not one snapshot: another process may have committed its schema (tables and
  // user_version together) between them. Tables seen now with a version set: look again.
  if (tables(db).length > 0 && (db.pragma('user_version', { simple: true }) as number) !== 0)
    return migrateSchema(db, file, create);
  refuseForeign(db, file);
  if (!create) throw new NoRegistryError(file);
  db.transaction(() => {
    if ((db.pragma('user_version', { simple: true }) as number) !== 0) return;
    refuseForeign(db, file);
    db.exec(`
        CREATE TABLE registrations ${REGISTRATIONS_TABLE};
        CREATE INDEX registrations_by_process ON registrations (node, pid, pid_start);
        CREATE TABLE registry_info (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        INSERT INTO registry_info VALUES ('schema_version', '${SQLITE_SCHEMA_VERSION}'), ('created_at', '${Date.now()}');
        PRAGMA user_version = ${SQLITE_SCHEMA_VERSION};`);
  }).immediate();
  // Someone else's schema (made while we waited for the lock): the same checks as on any open.
  if ((db.pragma('user_version', { simple: true }) as number) !== SQLITE_SCHEMA_VERSION)
    migrateSchema(db, file, create);
  else checkSchema(db, file);
}

/** A file with tables but no procreg schema version is not ours to write into. */
function refuseForeign(db: DatabaseT.Database, file: string): void {
  const names = tables(db);
  if (names.length === 0) return;
  const legacy = names.includes('process_registry_backup');
  throw new InvalidInputError(
    legacy
      ? `${file} is a legacy dual-storage registry, not a procreg database: open it as legacy:${file} (see \`registry migrate\`)`
      : `${file} holds other tables (${names.slice(0, 5).join(', ')}), not a procreg registry: point --backend at a new file`,
  );
}

function tables(db: DatabaseT.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .pluck()
    .all() as string[];
}

export function checkSchema(db: DatabaseT.Database, file: string): void {
  const ok = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'registrations'").get();
  if (ok) return;
  // An empty file (made by `touch`, or a creator that has not committed yet) holds no registry.
  if (tables(db).length === 0) throw new NoRegistryError(file);
  throw new InvalidInputError(
    `${file} is not a procreg registry (no registrations table): point --backend at a procreg database`,
  );
}

/** An object whose properties are statements prepared from `sql` on first access. */
function lazyStatements<K extends string>(
  db: DatabaseT.Database,
  sql: Record<K, string>,
): Record<K, DatabaseT.Statement> {
  const out = {} as Record<K, DatabaseT.Statement>;
  for (const k of Object.keys(sql) as K[]) {
    Object.defineProperty(out, k, {
      get() {
        const st = db.prepare(sql[k]);
        Object.defineProperty(out, k, { value: st });
        return st;
      },
      configurable: true,
    });
  }
  return out;
}
