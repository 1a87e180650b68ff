/**
 * `restore` into a SQLite store without doubling the disk (issue 14 §7, docs/restore.md).
 *
 * One transaction for the whole dump made the WAL as large as the data (1.33 GB at 10M). Instead:
 *
 * 1. Settle what a killed restore left: its staging tables are dropped (it never reached its swap).
 * 2. Stage: a table `registrations_restore` with the schema of `registrations` (and its
 *    (node, pid, pid_start) index) is filled in chunks of STAGE_CHUNK entries, one transaction
 *    each, so the WAL holds one chunk at a time (checkpoints run between chunks; the WAL is
 *    reset to its start when no reader holds it). The entries come as the dump is read and
 *    checked (`plan.readChecked`: one pass); a bad line, or a count or digest that does not
 *    match at the end, throws, and the staging tables are dropped: nothing was published.
 *    When the staged table will replace the live one, its metadata index is built alongside, row
 *    by row into `meta_index_restore` (a TEMP trigger of this connection on the staging table),
 *    so the swap does not rebuild the index in one large transaction.
 * 3. Swap, in one short transaction: `replace` (or a merge into an empty store) drops the old
 *    tables and renames the staged ones in their place (no row is copied), makes the triggers of
 *    the change log and the index again and writes one reset row to the log (watchers list
 *    again); a merge into a non-empty store copies the staged rows over the live ones
 *    (`INSERT OR REPLACE … SELECT`, a transaction as large as the dump, each row logged and
 *    indexed by the live table's triggers).
 *
 * A kill at any point leaves the old state (before the swap commits: only staging tables that
 * readers never look at, discarded by the next restore or `restore --resume`) or the new one.
 * The process index keeps one of two names (`registrations_by_process`, `…_by_process_b`), since
 * SQLite cannot rename an index and the staging table's index exists next to the live one.
 */
import type DatabaseT from 'better-sqlite3';
import type { Registration, RestoreApplied, RestorePlan } from './contract.js';
import { Checkpointer } from './sqlite-checkpoint.js';
import { resetFeed } from './sqlite-feed.js';
import { deleteIndexTerms, ensureIndexSchema, indexRowSql, MetaIndex } from './sqlite-index.js';

const STAGING = 'registrations_restore';
/** The staged metadata index, and the connection's trigger that removes a replaced row's terms from it. */
const STAGED_INDEX = 'meta_index_restore';
const STAGED_TRIGGER = 'registrations_restore_unindex';
const DROP_TRIGGERS = `DROP TRIGGER IF EXISTS temp.${STAGED_TRIGGER};`;
const INDEX_NAMES = ['registrations_by_process', 'registrations_by_process_b'] as const;
/** Entries per staging transaction. */
export const STAGE_CHUNK = 500;
/** Entries between two checkpoints (in a worker: src/backends/sqlite-checkpoint.ts). */
const CHECKPOINT_EVERY = 10_000;
/** The info row naming the restore being staged. */
const INFO = 'restore_staging';

type Staged = { id: string; mode: string; count: number; digest: string };

/** Drop the staging table a killed restore left, if any: what it was, discarded. */
export function discardStaged(db: DatabaseT.Database): RestoreApplied['recovered'] {
  const exists = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)")
    .get(STAGING, STAGED_INDEX);
  const info = db.prepare('SELECT value FROM registry_info WHERE name = ?').pluck().get(INFO) as string | undefined;
  if (!exists && info === undefined) return undefined;
  let staged: Partial<Staged> = {};
  try {
    staged = info ? (JSON.parse(info) as Staged) : {};
  } catch {
    staged = {};
  }
  dropStaged(db);
  return {
    id: staged.id ?? 'unknown',
    action: 'discarded',
    ...(staged.mode ? { mode: staged.mode } : {}),
    ...(staged.count !== undefined ? { count: staged.count } : {}),
    ...(staged.digest ? { digest: staged.digest } : {}),
  };
}

/** Drop the staging tables, this connection's trigger and the info row, in one transaction. */
function dropStaged(db: DatabaseT.Database): void {
  db.transaction(() => {
    db.exec(`${DROP_TRIGGERS} DROP TABLE IF EXISTS ${STAGING}; DROP TABLE IF EXISTS ${STAGED_INDEX}`);
    db.prepare('DELETE FROM registry_info WHERE name = ?').run(INFO);
  }).immediate();
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
  const has = (name: string) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  // The staged rows will most likely replace the live table: build their index alongside.
  const indexStaged =
    has('meta_index') &&
    has('meta_index_fields') &&
    (plan.mode === 'replace' || db.prepare('SELECT 1 FROM registrations LIMIT 1').get() === undefined);
  db.transaction(() => {
    db.exec(schema.replace(/^CREATE TABLE\s+("?)registrations\1/i, `CREATE TABLE ${STAGING}`));
    db.exec(`CREATE INDEX ${indexName} ON ${STAGING} (node, pid, pid_start)`);
    if (indexStaged) {
      const indexSchema = db
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'meta_index'")
        .pluck()
        .get() as string;
      db.exec(indexSchema.replace(/^CREATE TABLE\s+("?)meta_index\1/i, `CREATE TABLE ${STAGED_INDEX}`));
      // TEMP: it belongs to this connection and vanishes with it (a killed restore leaves none).
      db.exec(`CREATE TEMP TRIGGER ${STAGED_TRIGGER} AFTER DELETE ON main.${STAGING}
        WHEN OLD.meta <> '{}' BEGIN ${deleteIndexTerms('OLD', STAGED_INDEX)} END`);
    }
    db.prepare('INSERT INTO registry_info (name, value) VALUES (?, ?)').run(INFO, JSON.stringify(staged));
  }).immediate();

  const ins = db.prepare(
    `INSERT INTO ${STAGING} (namespace, key, pid, node, meta, registered_at, updated_at, pid_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const del = db.prepare(`DELETE FROM ${STAGING} WHERE namespace = ? AND key = ?`);
  // A row is indexed by the index's own SQL (the live triggers' rule), and only when its metadata
  // names an indexed field: most rows cost one property check per field, not a JSON walk in SQL.
  const fields = indexStaged ? (db.prepare('SELECT field FROM meta_index_fields').pluck().all() as string[]) : [];
  const indexRow = indexStaged ? db.prepare(indexRowSql(STAGING, STAGED_INDEX)) : undefined;
  const stage = db.transaction((batch: Registration[]) => {
    for (const e of batch) {
      const row = [
        e.namespace,
        e.key,
        e.pid,
        e.node,
        JSON.stringify(e.meta),
        e.registeredAt,
        e.updatedAt,
        e.pidStart ?? null,
      ];
      try {
        ins.run(row);
      } catch (err) {
        // A key twice in the dump: the later line wins (its earlier row and index terms removed).
        if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw err;
        del.run(e.namespace, e.key);
        ins.run(row);
      }
      if (indexRow && fields.some((f) => Object.hasOwn(e.meta, f))) indexRow.run(e.namespace, e.key);
    }
  });
  // Checkpoints in a worker every CHECKPOINT_EVERY entries (started at the first: a small restore
  // keeps the connection's automatic checkpoint), awaited: the event loop runs meanwhile.
  let ckpt: Checkpointer | undefined;
  let started = false;
  let since = 0;
  try {
    // One pass where the plan offers it: a bad dump throws here, before anything is published.
    let yielded = performance.now();
    for await (const batch of plan.readChecked ? plan.readChecked(STAGE_CHUNK) : plan.batches(STAGE_CHUNK)) {
      stage.immediate(batch);
      since += batch.length;
      if (since >= CHECKPOINT_EVERY) {
        since = 0;
        if (!started) {
          started = true;
          ckpt = Checkpointer.start(db);
        }
        if (ckpt) {
          try {
            await ckpt.run();
          } catch {
            // No worker after all: the connection's automatic checkpoint again.
            await ckpt.close().catch(() => undefined);
            ckpt = undefined;
          }
          yielded = performance.now();
        }
      }
      // The event loop runs between transactions (timers, requests on a node).
      if (performance.now() - yielded > 4) {
        await new Promise<void>((r) => setImmediate(r));
        yielded = performance.now();
      }
    }
    if (ckpt) await ckpt.run().catch(() => undefined);
  } catch (err) {
    try {
      dropStaged(db);
    } catch {
      // the next restore (or `restore --resume`) discards it
    }
    throw err;
  } finally {
    await ckpt?.close();
  }

  // The swap: one short transaction.
  const swap = db.transaction((): number => {
    db.exec(DROP_TRIGGERS);
    const liveEmpty = db.prepare('SELECT 1 FROM registrations LIMIT 1').get() === undefined;
    if (plan.mode === 'merge' && !liveEmpty) {
      db.exec(
        `INSERT OR REPLACE INTO registrations SELECT * FROM ${STAGING}; DROP TABLE ${STAGING}; DROP TABLE IF EXISTS ${STAGED_INDEX}`,
      );
      db.prepare('DELETE FROM registry_info WHERE name = ?').run(INFO);
      return 0;
    }
    const cleared = liveEmpty ? 0 : (db.prepare('SELECT count(*) FROM registrations').pluck().get() as number);
    db.exec(`DROP TABLE registrations; ALTER TABLE ${STAGING} RENAME TO registrations`);
    if (indexStaged) {
      // The index built while staging takes the old one's place; its triggers go on the new table.
      db.exec(`DROP TABLE meta_index; ALTER TABLE ${STAGED_INDEX} RENAME TO meta_index`);
      ensureIndexSchema(db);
    }
    // The triggers of the change log went with the old table: make them again and mark the log
    // (watchers list again). Without a staged index, the index is rebuilt here, inside the swap.
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
