/**
 * `restore` into a SQLite store without doubling the disk (issue 14 §7, docs/restore.md).
 *
 * One transaction for the whole dump made the WAL as large as the data (1.33 GB at 10M). Instead:
 *
 * 1. Settle what a killed restore left: its staging table is dropped (it never reached its swap).
 * 2. Stage: a table `registrations_restore` with the schema of `registrations` (and its
 *    (node, pid, pid_start) index) is filled in chunks of STAGE_CHUNK entries, one transaction
 *    each, so the WAL holds one chunk at a time (checkpoints run between chunks; the WAL is
 *    reset to its start when no reader holds it).
 * 3. Swap, in one short transaction: `replace` (or a merge into an empty store) drops the old
 *    table and renames the staging table in its place (no row is copied); a merge into a
 *    non-empty store copies the staged rows over the live ones (`INSERT OR REPLACE … SELECT`,
 *    a transaction as large as the dump).
 *
 * A kill at any point leaves the old state (before the swap commits: only a staging table that
 * readers never look at, discarded by the next restore or `restore --resume`) or the new one.
 * The process index keeps one of two names (`registrations_by_process`, `…_by_process_b`), since
 * SQLite cannot rename an index and the staging table's index exists next to the live one.
 */
import type DatabaseT from 'better-sqlite3';
import type { Registration, RestoreApplied, RestorePlan } from './contract.js';
import { resetFeed } from './sqlite-feed.js';
import { MetaIndex } from './sqlite-index.js';

const STAGING = 'registrations_restore';
const INDEX_NAMES = ['registrations_by_process', 'registrations_by_process_b'] as const;
/** Entries per staging transaction. */
export const STAGE_CHUNK = 5000;
/** The info row naming the restore being staged. */
const INFO = 'restore_staging';

type Staged = { id: string; mode: string; count: number; digest: string };

/** Drop the staging table a killed restore left, if any: what it was, discarded. */
export function discardStaged(db: DatabaseT.Database): RestoreApplied['recovered'] {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(STAGING);
  const info = db.prepare('SELECT value FROM registry_info WHERE name = ?').pluck().get(INFO) as string | undefined;
  if (!exists && info === undefined) return undefined;
  let staged: Partial<Staged> = {};
  try {
    staged = info ? (JSON.parse(info) as Staged) : {};
  } catch {
    staged = {};
  }
  db.transaction(() => {
    db.exec(`DROP TABLE IF EXISTS ${STAGING}`);
    db.prepare('DELETE FROM registry_info WHERE name = ?').run(INFO);
  }).immediate();
  return {
    id: staged.id ?? 'unknown',
    action: 'discarded',
    ...(staged.mode ? { mode: staged.mode } : {}),
    ...(staged.count !== undefined ? { count: staged.count } : {}),
    ...(staged.digest ? { digest: staged.digest } : {}),
  };
}

/** Restore `plan` into `db` through a staging table and one swap (see the module comment). */
export async function restoreStaged(db: DatabaseT.Database, plan: RestorePlan): Promise<RestoreApplied> {
  const recovered = discardStaged(db);
  const live = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'registrations' AND name IN (?, ?)")
    .pluck()
    .get(...INDEX_NAMES) as string | undefined;
  const indexName = live === INDEX_NAMES[0] ? INDEX_NAMES[1] : INDEX_NAMES[0];
  const schema = db
    .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'registrations'")
    .pluck()
    .get() as string;
  const staged: Staged = { id: plan.id, mode: plan.mode, count: plan.count, digest: plan.digest };
  db.transaction(() => {
    db.exec(schema.replace(/^CREATE TABLE\s+("?)registrations\1/i, `CREATE TABLE ${STAGING}`));
    db.exec(`CREATE INDEX ${indexName} ON ${STAGING} (node, pid, pid_start)`);
    db.prepare('INSERT INTO registry_info (name, value) VALUES (?, ?)').run(INFO, JSON.stringify(staged));
  }).immediate();

  const ins = db.prepare(
    `INSERT OR REPLACE INTO ${STAGING} (namespace, key, pid, node, meta, registered_at, updated_at, pid_start)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const stage = db.transaction((batch: Registration[]) => {
    for (const e of batch)
      ins.run(
        e.namespace,
        e.key,
        e.pid,
        e.node,
        JSON.stringify(e.meta),
        e.registeredAt,
        e.updatedAt,
        e.pidStart ?? null,
      );
  });
  for await (const batch of plan.batches(STAGE_CHUNK)) stage.immediate(batch);

  // The swap: one short transaction.
  const swap = db.transaction((): number => {
    const liveEmpty = db.prepare('SELECT 1 FROM registrations LIMIT 1').get() === undefined;
    if (plan.mode === 'merge' && !liveEmpty) {
      db.exec(`INSERT OR REPLACE INTO registrations SELECT * FROM ${STAGING}; DROP TABLE ${STAGING}`);
      db.prepare('DELETE FROM registry_info WHERE name = ?').run(INFO);
      return 0;
    }
    const cleared = liveEmpty ? 0 : (db.prepare('SELECT count(*) FROM registrations').pluck().get() as number);
    db.exec(`DROP TABLE registrations; ALTER TABLE ${STAGING} RENAME TO registrations`);
    // The triggers of the change log and of the metadata index went with the old table: make them
    // again, mark the log (watchers list again) and rebuild the index, inside the swap.
    resetFeed(db);
    MetaIndex.open(db, { writable: true });
    db.prepare('DELETE FROM registry_info WHERE name = ?').run(INFO);
    return cleared;
  });
  const cleared = swap.immediate();
  // Give the freed pages' WAL frames back to the main file now (a restore is followed by reads).
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // an optimisation only
  }
  return { cleared, ...(recovered ? { recovered } : {}) };
}
