/**
 * The SQLite backend's change feed (docs/feed.md): a revisioned change log inside the database
 * file, so `watch` works across processes on the default store.
 *
 *   registry_changes(rev INTEGER PRIMARY KEY, op 1 = put / 0 = delete / 2 = reset, namespace, key,
 *                    pid, node, meta, registered_at, updated_at, pid_start)
 *
 * Triggers on `registrations` write one row per changed registration in the same transaction as the
 * change, so every mutation is logged whoever makes it — register, replace, metadata update,
 * unregister, lazy removal of a dead entry, sweeps, restore, bulk, clearNamespace, another procreg
 * process, even the `sqlite3` shell. `rev` is the rowid: max + 1 under the single write lock, so
 * revisions grow in commit order with no gaps (a rolled-back write takes none).
 *
 * Bounded: every COMPACT_EVERY revisions a trigger deletes the rows older than the last
 * `feed_retention` (registry_info; default 10,000, backendOpts.feedRetention), keeping the newest.
 * A watch from a revision older than the oldest kept one is refused as compacted (list again and
 * watch from the current revision), as a node's feed does.
 *
 * Readers poll: `PRAGMA data_version` (changes when another connection commits; a few µs) every
 * `pollMs` (default 10 ms) while a watch is open, then one range read of the new rows. Writes made
 * through this connection are delivered right after they commit, with no polling delay.
 */
import type DatabaseT from 'better-sqlite3';
import { type ChangeEvent, InvalidInputError, type Meta, type Registration } from './contract.js';
import { compactedError } from './feed-error.js';

export const FEED_TABLE = 'registry_changes';
/** Events kept for resumption unless backendOpts.feedRetention says otherwise. */
export const FEED_RETENTION = 10_000;
/** How often an open watch looks for other processes' commits (ms). */
export const FEED_POLL_MS = 10;
/** The compaction trigger runs once per this many revisions. */
const COMPACT_EVERY = 128;
/** Every this many polls the log is read even if no other connection committed (~100 ms). */
const SAFETY_TICKS = 10;
/** Rows read per query while catching up. */
const BATCH = 1000;

export interface FeedOptions {
  /** Events kept in the log (at least 1; default 10,000). Stored in the file: the last writable opener sets it. */
  feedRetention?: number;
  /** Poll interval of an open watch, in ms (default 10). */
  feedPollMs?: number;
}

const COLS = 'pid, node, meta, registered_at, updated_at, pid_start';
const logPut = (row: 'new') =>
  `INSERT INTO ${FEED_TABLE} (op, namespace, key, ${COLS}) VALUES (1, ${row}.namespace, ${row}.key, ${COLS.split(', ')
    .map((c) => `${row}.${c}`)
    .join(', ')});`;
const logDelete = (row: 'old') =>
  `INSERT INTO ${FEED_TABLE} (op, namespace, key) VALUES (0, ${row}.namespace, ${row}.key);`;

/** The `op` of the row resetFeed writes: not an event, a compaction point. */
const OP_RESET = 2;

/**
 * A change the log does not list row by row — a restore swapped a whole new table in
 * (src/backends/sqlite-restore.ts) — inside that change's transaction: the log is emptied and one
 * reset row takes the next revision but one, so every revision before it reads as compacted.
 * A watcher resumes only by listing again, as after a compaction; the triggers, dropped with the
 * old table, are made again on the new one.
 */
export function resetFeed(db: DatabaseT.Database): void {
  if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(FEED_TABLE)) return;
  ensureFeedSchema(db);
  const max = (db.prepare(`SELECT max(rev) FROM ${FEED_TABLE}`).pluck().get() as number | null) ?? 0;
  db.prepare(`DELETE FROM ${FEED_TABLE}`).run();
  db.prepare(`INSERT INTO ${FEED_TABLE} (rev, op, namespace, key) VALUES (?, ${OP_RESET}, '', '')`).run(max + 2);
}

/** The log table and its triggers (each created only if missing). */
const FEED_SCHEMA: Record<string, string> = {
  [FEED_TABLE]: `CREATE TABLE IF NOT EXISTS ${FEED_TABLE} (
      rev           INTEGER PRIMARY KEY,
      op            INTEGER NOT NULL,
      namespace     TEXT    NOT NULL,
      key           TEXT    NOT NULL,
      pid           INTEGER,
      node          TEXT,
      meta          TEXT,
      registered_at INTEGER,
      updated_at    INTEGER,
      pid_start     INTEGER
    )`,
  registry_changes_insert: `CREATE TRIGGER IF NOT EXISTS registry_changes_insert AFTER INSERT ON registrations
      BEGIN ${logPut('new')} END`,
  registry_changes_update: `CREATE TRIGGER IF NOT EXISTS registry_changes_update AFTER UPDATE ON registrations
      BEGIN
        INSERT INTO ${FEED_TABLE} (op, namespace, key) SELECT 0, old.namespace, old.key
          WHERE old.namespace IS NOT new.namespace OR old.key IS NOT new.key;
        ${logPut('new')}
      END`,
  registry_changes_delete: `CREATE TRIGGER IF NOT EXISTS registry_changes_delete AFTER DELETE ON registrations
      BEGIN ${logDelete('old')} END`,
  registry_changes_compact: `CREATE TRIGGER IF NOT EXISTS registry_changes_compact AFTER INSERT ON ${FEED_TABLE}
      WHEN new.rev % ${COMPACT_EVERY} = 0
      BEGIN
        DELETE FROM ${FEED_TABLE}
          WHERE rev <= new.rev - (SELECT CAST(value AS INTEGER) FROM registry_info WHERE name = 'feed_retention');
      END`,
};

/**
 * Give a store its change log at a writable open (an existing store without one gets it now).
 * Writes nothing when the log, its triggers and the retention are already there.
 */
export function ensureFeedSchema(db: DatabaseT.Database, opts: FeedOptions = {}): void {
  const retention = opts.feedRetention;
  if (retention !== undefined && !(Number.isInteger(retention) && retention >= 1))
    throw new InvalidInputError(
      `sqlite: feedRetention must be a whole number of events of at least 1, not ${JSON.stringify(retention)}`,
    );
  const have = new Set(
    db
      .prepare(`SELECT name FROM sqlite_master WHERE name IN (${Object.keys(FEED_SCHEMA).map(() => '?')})`)
      .pluck()
      .all(...Object.keys(FEED_SCHEMA)) as string[],
  );
  const stored = () => db.prepare("SELECT value FROM registry_info WHERE name = 'feed_retention'").pluck().get();
  const want = String(retention ?? FEED_RETENTION);
  const current = stored();
  if (
    have.size === Object.keys(FEED_SCHEMA).length &&
    current !== undefined &&
    (retention === undefined || current === want)
  )
    return;
  db.transaction(() => {
    for (const sql of Object.values(FEED_SCHEMA)) db.exec(sql);
    if (retention !== undefined || stored() === undefined)
      db.prepare(
        "INSERT INTO registry_info (name, value) VALUES ('feed_retention', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      ).run(want);
  }).immediate();
}

type LogRow = {
  rev: number;
  op: number;
  namespace: string;
  key: string;
  pid: number | null;
  node: string | null;
  meta: string | null;
  registered_at: number | null;
  updated_at: number | null;
  pid_start: number | null;
};

interface Listener {
  ns?: string;
  /** The last revision this listener has been given. */
  last: number;
  fn: (e: ChangeEvent) => void;
  onError?: (err: Error) => void;
}

/** The reading side of the log: revisions, resumption, polling, delivery. One per connection. */
export class SqliteFeed {
  private readonly listeners = new Set<Listener>();
  /** Every listener has seen every event up to here. */
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private dataVersion = -1;
  private present = false;
  private pumping = false;
  private again = false;
  private ticks = 0;
  private readonly pollMs: number;
  private st: Record<'max' | 'min' | 'after' | 'afterNs', DatabaseT.Statement> | undefined;

  constructor(
    private readonly db: DatabaseT.Database,
    private readonly mapError: (cause: unknown) => Error,
    opts: FeedOptions = {},
  ) {
    this.pollMs = opts.feedPollMs ?? FEED_POLL_MS;
    if (!(this.pollMs > 0))
      throw new InvalidInputError(
        `sqlite: feedPollMs must be a number of ms above 0, not ${JSON.stringify(opts.feedPollMs)}`,
      );
  }

  /** Statements, once the log exists (a read-only opener of an older store waits for a writer to add it). */
  private stmts() {
    if (this.st) return this.st;
    if (!this.present) {
      this.present = !!this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(FEED_TABLE);
      if (!this.present) return undefined;
    }
    const cols = `rev, op, namespace, key, ${COLS}`;
    this.st = {
      max: this.db.prepare(`SELECT rev FROM ${FEED_TABLE} ORDER BY rev DESC LIMIT 1`).pluck(),
      // The oldest revision a watch can resume after: a reset row (resetFeed) compacts itself too.
      min: this.db.prepare(`SELECT rev + (op = ${OP_RESET}) FROM ${FEED_TABLE} ORDER BY rev LIMIT 1`).pluck(),
      after: this.db.prepare(
        `SELECT ${cols} FROM ${FEED_TABLE} WHERE rev > ? AND rev <= ? ORDER BY rev LIMIT ${BATCH}`,
      ),
      afterNs: this.db.prepare(
        `SELECT ${cols} FROM ${FEED_TABLE} WHERE rev > ? AND rev <= ? AND namespace = ? ORDER BY rev LIMIT ${BATCH}`,
      ),
    };
    return this.st;
  }

  /** The newest revision in the log (0 when it is empty or absent). */
  currentRevision(): number {
    return (this.stmts()?.max.get() as number | undefined) ?? 0;
  }

  /** A lookup and the revision it reflects, read in one snapshot. */
  lookupAt<T>(lookup: () => T): { entry: T; revision: number } {
    return this.db.transaction(() => ({ entry: lookup(), revision: this.currentRevision() })).deferred();
  }

  /** Changes after `sinceRevision` (default: from now), then live ones; returns the stop function. */
  watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): () => void {
    const { sinceRevision: since, namespace } = opts;
    // Read before the snapshot: a commit in between makes the next poll read (nothing is missed).
    const version = this.version();
    // Replay and subscribe against one snapshot of the log: nothing between them is lost.
    const start = this.db
      .transaction(() => {
        const current = this.currentRevision();
        if (since === undefined || since >= current) {
          if (since !== undefined && since > current)
            throw new InvalidInputError(
              `invalid since ${since}: it is ahead of the feed's current revision ${current}; watch from a revision this store gave you`,
            );
          return { current, backlog: [] as LogRow[] };
        }
        const oldest = (this.st?.min.get() as number | undefined) ?? current + 1;
        if (since + 1 < oldest) return { current, compacted: oldest };
        return { current, backlog: this.read(since, current, namespace) };
      })
      .deferred();
    if (start.compacted !== undefined) {
      onError?.(compactedError(since!, start.compacted));
      return () => {};
    }
    if (this.listeners.size === 0) {
      this.head = start.current;
      this.dataVersion = version;
    }
    for (const row of start.backlog) onEvent(toEvent(row));
    // The next pump reads from the shared head (<= this snapshot): this listener skips what it has.
    const l: Listener = { ns: namespace, fn: onEvent, onError, last: start.current };
    this.listeners.add(l);
    this.timer ??= setInterval(() => this.poll(), this.pollMs).unref();
    return () => {
      this.listeners.delete(l);
      if (this.listeners.size === 0) this.stopTimer();
    };
  }

  /** After a write through this connection has committed: deliver it now. */
  afterWrite(): void {
    if (this.listeners.size > 0 && !this.db.inTransaction) this.pump();
  }

  close(): void {
    this.stopTimer();
    this.listeners.clear();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private version(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  /** A timer tick: read the log only when another connection has committed since the last look. */
  private poll(): void {
    if (!this.db.open) return this.close();
    try {
      const v = this.version();
      // data_version does not move for this connection's own commits: those are pumped by
      // afterWrite; every SAFETY_TICKS ticks the log is read anyway, for a write that was not.
      if (v === this.dataVersion && ++this.ticks % SAFETY_TICKS !== 0) return;
      this.dataVersion = v;
    } catch (cause) {
      return this.fail(this.mapError(cause));
    }
    this.pump();
  }

  /** Deliver every committed event after the head to every listener, in revision order. */
  private pump(): void {
    if (this.pumping) {
      this.again = true; // a listener wrote: read again when the current round ends
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        for (;;) {
          let rows: LogRow[];
          try {
            rows = this.batch(this.head, Number.MAX_SAFE_INTEGER);
          } catch (cause) {
            return this.fail(this.mapError(cause));
          }
          if (rows.length === 0) break;
          // A gap after the head: the rows were compacted before this reader saw them.
          if (rows[0]!.rev !== this.head + 1) return this.fail(compactedError(this.head, rows[0]!.rev));
          for (const row of rows) {
            // Not a change but "everything up to here was replaced at once" (resetFeed): list again.
            if (row.op === OP_RESET) return this.fail(compactedError(this.head, row.rev + 1));
            this.head = row.rev;
            const e = toEvent(row);
            for (const l of [...this.listeners]) {
              if (l.last >= row.rev || !this.listeners.has(l)) continue;
              l.last = row.rev;
              if (!l.ns || l.ns === e.namespace) this.deliver(l, e);
            }
          }
          if (rows.length < BATCH) break;
        }
      } while (this.again && this.listeners.size > 0);
    } finally {
      this.pumping = false;
    }
  }

  private deliver(l: Listener, e: ChangeEvent): void {
    try {
      l.fn(e);
    } catch (err) {
      this.listeners.delete(l);
      l.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Every listener ends with `err` (a compacted gap, a damaged file). */
  private fail(err: Error): void {
    const ls = [...this.listeners];
    this.close();
    for (const l of ls) l.onError?.(err);
  }

  /** One batch of rows in (after, upTo], of one namespace or all. */
  private batch(after: number, upTo: number, namespace?: string): LogRow[] {
    const st = this.stmts();
    if (!st || upTo <= after) return [];
    return (namespace === undefined ? st.after.all(after, upTo) : st.afterNs.all(after, upTo, namespace)) as LogRow[];
  }

  /** Every row in (after, upTo] (a backlog: at most the retention). */
  private read(after: number, upTo: number, namespace?: string): LogRow[] {
    const out: LogRow[] = [];
    for (let from = after; ;) {
      const rows = this.batch(from, upTo, namespace);
      out.push(...rows);
      if (rows.length < BATCH) return out;
      from = rows.at(-1)!.rev;
    }
  }
}

function toEvent(r: LogRow): ChangeEvent {
  if (r.op === 0) return { revision: r.rev, type: 'delete', namespace: r.namespace, key: r.key };
  const entry: Registration = {
    namespace: r.namespace,
    key: r.key,
    pid: r.pid!,
    node: r.node!,
    meta: JSON.parse(r.meta ?? '{}') as Meta,
    registeredAt: r.registered_at!,
    updatedAt: r.updated_at!,
    pidStart: r.pid_start,
  };
  return { revision: r.rev, type: 'put', namespace: r.namespace, key: r.key, entry };
}

/** The backend methods that write: each is followed by `afterWrite` (deliver to watchers in this process). */
const WRITES = [
  'register',
  'unregister',
  'updateMetadata',
  'bulkRegister',
  'transaction',
  'clearNamespace',
  'removeProcesses',
] as const;

/** Wrap the write methods of `backend` so `after` runs when each returns. */
export function notifyAfterWrites(backend: object, after: () => void): void {
  const self = backend as Record<string, (...args: unknown[]) => unknown>;
  for (const name of WRITES) {
    const f = self[name];
    if (typeof f !== 'function') continue;
    self[name] = (...args: unknown[]) => {
      const out = f.apply(backend, args);
      after();
      return out;
    };
  }
}
