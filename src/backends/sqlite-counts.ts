/**
 * Per-process entry counts of the SQLite backend (issue 14 §7), kept exact by triggers, so that
 * `count` reads one row per process instead of counting every entry (docs/scale.md):
 *
 *   proc_counts(ns, node, pid, start, n) PRIMARY KEY (ns, node, pid, start), WITHOUT ROWID
 *     start is pid_start, NULL stored as -1 (a primary key column of a WITHOUT ROWID table
 *     cannot be NULL; a start time is never negative)
 *   proc_counts_pending(ns, key, node, pid, start)   see below
 *
 * Every write to `registrations` changes the counts in its own statement, whoever writes: this
 * procreg, an older one, the `sqlite3` shell. INSERT, DELETE and UPDATE fire their triggers; the
 * one write that removes a row without a trigger is `INSERT OR REPLACE` (SQLite fires the delete
 * triggers of the rows a REPLACE removes only under `PRAGMA recursive_triggers`, which no shell
 * sets). So a BEFORE INSERT trigger notes the row about to be replaced, if any, in
 * `proc_counts_pending`, and the AFTER INSERT trigger takes it off its process's count (a REPLACE
 * that does fire the delete trigger clears the note there, so nothing is taken twice). SQLite runs
 * a row's BEFORE trigger, its change and its AFTER trigger one row at a time, so a note is only
 * ever read by the statement that wrote it; one left behind (an INSERT that became an upsert's
 * UPDATE, or was ignored) is reset by the key's next insert and removed by its next write.
 *
 * A writable open creates the tables and triggers and counts the store once (one GROUP BY over the
 * process index, in one IMMEDIATE transaction) when the tables or any trigger are missing — a new
 * store, a store from before the counts, a restore's swap (which drops the old table and its
 * triggers: `MetaIndex.open` calls `ensureProcCounts` inside the swap). Readers use the table only
 * while all its triggers exist (`trusted`), else they count the old way.
 */
import type DatabaseT from 'better-sqlite3';
import type { Registration } from './contract.js';

/** `start` for a NULL pid_start. */
const NO_START = -1;
const START = (r: string) => `ifnull(${r}.pid_start, ${NO_START})`;
const SAME_PROC = (r: string) => `ns = ${r}.namespace AND node = ${r}.node AND pid = ${r}.pid AND start = ${START(r)}`;

const ADD = (r: string) => `
    INSERT INTO proc_counts (ns, node, pid, start, n) VALUES (${r}.namespace, ${r}.node, ${r}.pid, ${START(r)}, 1)
      ON CONFLICT (ns, node, pid, start) DO UPDATE SET n = n + 1;`;
const SUB = (r: string) => `
    UPDATE proc_counts SET n = n - 1 WHERE ${SAME_PROC(r)};
    DELETE FROM proc_counts WHERE ${SAME_PROC(r)} AND n <= 0;`;
const PENDING = (r: string) => `proc_counts_pending WHERE ns = ${r}.namespace AND key = ${r}.key`;
const NOTED = (r: string) => `(SELECT node, pid, start FROM ${PENDING(r)})`;

export const TRIGGERS = [
  'proc_counts_noted',
  'proc_counts_replaced',
  'proc_counts_insert',
  'proc_counts_delete',
  'proc_counts_update',
  'proc_counts_touched',
] as const;

// A note exists only while its key's row does, as it was noted: every write that changes or
// removes the row removes the note. So an INSERT of a key without a row has no note to reset.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS proc_counts (
    ns TEXT NOT NULL, node TEXT NOT NULL, pid INTEGER NOT NULL, start INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (ns, node, pid, start)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS proc_counts_pending (
    ns TEXT NOT NULL, key TEXT NOT NULL, node TEXT NOT NULL, pid INTEGER NOT NULL, start INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
  ) WITHOUT ROWID;
  CREATE TRIGGER IF NOT EXISTS proc_counts_noted BEFORE INSERT ON registrations
    WHEN EXISTS (SELECT 1 FROM registrations WHERE namespace = NEW.namespace AND key = NEW.key) BEGIN
    DELETE FROM ${PENDING('NEW')};
    INSERT INTO proc_counts_pending (ns, key, node, pid, start)
      SELECT namespace, key, node, pid, ${START('registrations')} FROM registrations
      WHERE namespace = NEW.namespace AND key = NEW.key;
  END;
  CREATE TRIGGER IF NOT EXISTS proc_counts_replaced AFTER INSERT ON registrations
    WHEN EXISTS (SELECT 1 FROM ${PENDING('NEW')}) BEGIN
    UPDATE proc_counts SET n = n - 1 WHERE ns = NEW.namespace AND (node, pid, start) = ${NOTED('NEW')};
    DELETE FROM proc_counts WHERE ns = NEW.namespace AND (node, pid, start) = ${NOTED('NEW')} AND n <= 0;
    DELETE FROM ${PENDING('NEW')};
  END;
  CREATE TRIGGER IF NOT EXISTS proc_counts_insert AFTER INSERT ON registrations BEGIN
    ${ADD('NEW')}
  END;
  CREATE TRIGGER IF NOT EXISTS proc_counts_delete AFTER DELETE ON registrations BEGIN
    ${SUB('OLD')}
    DELETE FROM ${PENDING('OLD')};
  END;
  CREATE TRIGGER IF NOT EXISTS proc_counts_update AFTER UPDATE OF namespace, node, pid, pid_start ON registrations
    WHEN OLD.namespace IS NOT NEW.namespace OR OLD.node IS NOT NEW.node OR OLD.pid IS NOT NEW.pid
      OR OLD.pid_start IS NOT NEW.pid_start BEGIN
    ${SUB('OLD')}
    ${ADD('NEW')}
  END;
  CREATE TRIGGER IF NOT EXISTS proc_counts_touched AFTER UPDATE ON registrations
    WHEN EXISTS (SELECT 1 FROM ${PENDING('OLD')}) BEGIN
    DELETE FROM ${PENDING('OLD')};
  END;`;

// Grouped in the order of the (node, pid, pid_start) index, which also holds the namespace: one
// walk of the smallest index, no sort of the whole table.
const REBUILD = `DELETE FROM proc_counts; DELETE FROM proc_counts_pending;
  INSERT INTO proc_counts (ns, node, pid, start, n)
    SELECT namespace, node, pid, ifnull(pid_start, ${NO_START}), count(*) FROM registrations
    GROUP BY node, pid, pid_start, namespace;`;

const TRIGGER_COUNT = `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'registrations'
  AND name IN (${TRIGGERS.map((t) => `'${t}'`).join(', ')})`;

/** The counts exist and every trigger that keeps them is in place. */
export function trusted(db: DatabaseT.Database): boolean {
  return (db.prepare(TRIGGER_COUNT).pluck().get() as number) === TRIGGERS.length;
}

/**
 * Create the counts and their triggers, counting the store once, when something is missing. Runs
 * inside the caller's transaction when there is one (a restore's swap), else in its own IMMEDIATE
 * transaction, re-checked under the lock so concurrent openers count once.
 */
export function ensureProcCounts(db: DatabaseT.Database): void {
  if (trusted(db)) return;
  const build = () => {
    if (trusted(db)) return;
    db.exec(SCHEMA);
    db.exec(REBUILD);
  };
  if (db.inTransaction) build();
  else db.transaction(build).immediate();
}

/** Drop the counts (tests and benches that need a store without them). */
export function dropProcCounts(db: DatabaseT.Database): void {
  db.exec(
    `${TRIGGERS.map((t) => `DROP TRIGGER IF EXISTS ${t};`).join(' ')} DROP TABLE IF EXISTS proc_counts; DROP TABLE IF EXISTS proc_counts_pending;`,
  );
}

/** One (namespace, process) of the counts; `pidStart` null where the store has NULL. */
export interface ProcCount {
  node: string;
  pid: number;
  pidStart: number | null;
  n: number;
}

/** The counts of a namespace (or of all), read in one statement; undefined when not trusted. */
export function procCountRows(db: DatabaseT.Database, namespace: string | undefined): ProcCount[] | undefined {
  return db
    .transaction(() => {
      if (!trusted(db)) return undefined;
      const rows = (
        namespace === undefined
          ? db.prepare('SELECT node, pid, start, n FROM proc_counts').raw().all()
          : db.prepare('SELECT node, pid, start, n FROM proc_counts WHERE ns = ?').raw().all(namespace)
      ) as Array<[string, number, number, number]>;
      return rows.map(([node, pid, start, n]) => ({ node, pid, pidStart: start === NO_START ? null : start, n }));
    })
    .deferred();
}

/**
 * Live entries of a namespace (or of all) from the counts: one row per process; the processes of
 * `node` (the only ones this process judges: other nodes' entries count as alive, as the service's
 * `isAlive` says) judged once each. Undefined when the counts are not trusted (a read-only open of
 * a store without them): the caller counts the old way.
 */
export function countLiveFromTable(
  db: DatabaseT.Database,
  namespace: string | undefined,
  node: string,
  isAlive: (probe: Registration) => boolean,
): number | undefined {
  const rows = procCountRows(db, namespace);
  if (!rows) return undefined;
  const probe: Registration = { namespace: '', key: '', pid: 0, node, meta: {}, registeredAt: 0, updatedAt: 0 };
  const judged = new Map<string, boolean>();
  let live = 0;
  for (const { node: at, pid, pidStart, n } of rows) {
    if (at === node) {
      const id = `${pid}:${pidStart}`;
      let alive = judged.get(id);
      if (alive === undefined) {
        probe.pid = pid;
        probe.pidStart = pidStart;
        judged.set(id, (alive = isAlive(probe)));
      }
      if (!alive) continue;
    }
    live += n;
  }
  return live;
}

/** Stored entries (dead included) of a namespace or of all, from the counts; undefined when not trusted. */
export function countStoredFromTable(db: DatabaseT.Database, namespace: string | undefined): number | undefined {
  return db
    .transaction(() => {
      if (!trusted(db)) return undefined;
      return (
        namespace === undefined
          ? db.prepare('SELECT total(n) FROM proc_counts').pluck().get()
          : db.prepare('SELECT total(n) FROM proc_counts WHERE ns = ?').pluck().get(namespace)
      ) as number;
    })
    .deferred();
}
