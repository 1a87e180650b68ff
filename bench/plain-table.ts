/**
 * The table a raw baseline writes into: the strongest honest one. Same columns and primary key as
 * procreg's `registrations` (WITHOUT ROWID), the same pragmas (WAL, synchronous NORMAL), and
 * nothing procreg adds: no change-log or metadata-index triggers, no process index. A file procreg
 * created carries those triggers, so a baseline inserting there would pay for them too.
 */
import type DatabaseT from 'better-sqlite3';
import { loadBetterSqlite } from '../src/backends/sqlite.js';

export const PLAIN_COLS = 'namespace, key, pid, node, meta, registered_at, updated_at, pid_start';

/** Open (creating) `file` with a plain `registrations` table; `processIndex` adds the (node, pid, pid_start) index. */
export function openPlainTable(file: string, opts: { processIndex?: boolean } = {}): DatabaseT.Database {
  const Database = loadBetterSqlite();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE IF NOT EXISTS registrations (
      namespace     TEXT    NOT NULL,
      key           TEXT    NOT NULL,
      pid           INTEGER NOT NULL CHECK (pid > 0),
      node          TEXT    NOT NULL,
      meta          TEXT    NOT NULL DEFAULT '{}',
      registered_at INTEGER NOT NULL,
      updated_at    INTEGER NOT NULL,
      pid_start     INTEGER,
      PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID`);
  if (opts.processIndex)
    db.exec('CREATE INDEX IF NOT EXISTS registrations_by_process ON registrations (node, pid, pid_start)');
  return db;
}

/** A prepared plain INSERT into that table. */
export function plainInsert(db: DatabaseT.Database): DatabaseT.Statement {
  return db.prepare(`INSERT INTO registrations (${PLAIN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
}
