/**
 * The table a raw baseline writes into: the strongest honest one. Same columns and primary key as
 * procreg's `registrations` (WITHOUT ROWID), the same pragmas (WAL, synchronous NORMAL), and
 * nothing procreg adds: no change-log or metadata-index triggers, no process index. A file procreg
 * created carries those triggers, so a baseline inserting there would pay for them too.
 */
import type DatabaseT from 'better-sqlite3';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import { COLS, REGISTRATIONS_TABLE } from '../src/backends/sqlite-schema.js';

/** The columns, in the order of procreg's own statements. */
export const PLAIN_COLS = COLS;

/** Open (creating) `file` with a plain `registrations` table; `processIndex` adds the (node, pid, pid_start) index. */
export function openPlainTable(file: string, opts: { processIndex?: boolean } = {}): DatabaseT.Database {
  const Database = loadBetterSqlite();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE IF NOT EXISTS registrations ${REGISTRATIONS_TABLE}`);
  if (opts.processIndex)
    db.exec('CREATE INDEX IF NOT EXISTS registrations_by_process ON registrations (node, pid, pid_start)');
  return db;
}

/** A prepared plain INSERT into that table. */
export function plainInsert(db: DatabaseT.Database): DatabaseT.Statement {
  return db.prepare(`INSERT INTO registrations (${PLAIN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
}
