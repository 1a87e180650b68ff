/**
 * `sqlite:PATH` — an embedded SQLite file through better-sqlite3 (the default backend; the seed's
 * Registry backend: local, durable). WAL journal, synchronous=NORMAL, a versioned schema that the
 * `sqlite3` shell can read (documented in the README):
 *
 *   registrations(namespace, key, pid, node, meta JSON text, registered_at, updated_at, pid_start)
 *     PRIMARY KEY (namespace, key), WITHOUT ROWID; index on (node, pid, pid_start)
 *   registry_info(name PRIMARY KEY, value)   -- schema_version, created_at, last_cleanup
 *   PRAGMA user_version = 1
 *
 * register is one autocommit statement: an upsert whose conflict branch asks the service
 * (`replaceIf`, exposed to SQL as the function `procreg_replace`) whether the holder may go.
 */
import { resolve } from 'node:path';
import type DatabaseT from 'better-sqlite3';
import {
  type Backend,
  type BackendContext,
  type BulkResult,
  type Capabilities,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  InvalidInputError,
  type IntegrityReport,
  type ListOptions,
  type Meta,
  type Page,
  type ProcessSummary,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  type RestoreApplied,
  type RestorePlan,
  RegistryError,
  type UnregisterCondition,
  type UpdateOptions,
  type BucketDigests,
  type CompactReport,
} from './contract.js';
import { matchesWhere, mergePatch } from '../core/meta.js';
import { rolledBack } from '../core/bulk.js';
import { offThreadDigester } from './sqlite-digest.js';
import { compactDatabase } from './sqlite-compact.js';
import { ensureFeedSchema, type FeedOptions, notifyAfterWrites, SqliteFeed } from './sqlite-feed.js';
import { countLive, listIndexed, MetaIndex } from './sqlite-index.js';
import { countLiveFromTable, countStoredFromTable } from './sqlite-counts.js';
import { digestInSlices, processesAfter, removeProcessEntries } from './sqlite-scan.js';
import { discardStaged, restoreStaged } from './sqlite-restore.js';
import { mapSqliteError, openDatabase } from './sqlite-open.js';
import { isDamage, measureHealth, quickCheck, WAL_DEGRADED_BYTES } from './sqlite-health.js';
import { checkSchema, migrateSchema, prepareStatements, type Statements } from './sqlite-schema.js';

export { SQLITE_SCHEMA_VERSION } from './sqlite-schema.js';
export { loadBetterSqlite, mapSqliteError, openDatabase } from './sqlite-open.js';
export { createSqliteBackendOnFirstWrite } from './sqlite-first-write.js';

export const SQLITE_BACKEND = 'sqlite';

export interface SqliteOptions extends FeedOptions {
  /** busy_timeout in ms when another process holds the write lock (default 5000). */
  busyTimeout?: number;
  /** Open read-only (no schema creation). */
  readonly?: boolean;
  /** false: never create the file, its folders or the schema (read-only commands; also `BackendContext.create`). Default true. */
  create?: boolean;
  /** healthCheck reports `degraded` when the WAL file grows past this many bytes (default 256 MiB). */
  walLimitBytes?: number;
  /** Metadata fields in the index (docs/indexes.md; default DEFAULT_INDEX_FIELDS): a writable open sets the store's. */
  indexFields?: string[] | string;
  /** PRAGMA mmap_size: bytes of the file read through a memory map (default 2 GiB; 0: off). Keeps lookups flat at 10M (docs/scale.md). */
  mmapBytes?: number;
}

type Row = {
  namespace: string;
  key: string;
  pid: number;
  node: string;
  meta: string;
  registered_at: number;
  updated_at: number;
  pid_start: number | null;
};

export function createSqliteBackend(location: string, opts: SqliteOptions, ctx: BackendContext): Backend {
  return new SqliteBackend(location, opts, ctx);
}

export const SQLITE_CAPABILITIES: Capabilities = Object.freeze({
  ...defaultCapabilities,
  synchronous: true,
  bulkRegister: true,
  digest: true,
  persistent: true,
  transactions: true,
  watch: true, // the change log (src/backends/sqlite-feed.ts)
});

/** A sqlite: file, open (src/backends/sqlite-first-write.ts wraps one not created yet). */
export class SqliteBackend implements Backend {
  readonly name = SQLITE_BACKEND;
  readonly url: string;
  readonly capabilities: Capabilities = SQLITE_CAPABILITIES;

  readonly db: DatabaseT.Database;
  private readonly file: string;
  private readonly walLimit: number;
  private closed = false;
  private replaceIf: RegisterOptions['replaceIf'] = () => false;
  private readonly st: Statements;
  private readonly feed: SqliteFeed;

  /** The metadata index (src/backends/sqlite-index.ts). */
  readonly index: MetaIndex;

  constructor(
    location: string,
    opts: SqliteOptions,
    private readonly ctx: BackendContext,
  ) {
    if (!location) throw new InvalidInputError('sqlite: needs a file path, e.g. sqlite:./registry.db');
    this.file = resolve(location);
    this.url = `sqlite:${this.file}`;
    this.walLimit = opts.walLimitBytes ?? WAL_DEGRADED_BYTES;
    if (typeof this.walLimit !== 'number' || !(this.walLimit > 0))
      throw new InvalidInputError(
        `sqlite: walLimitBytes must be a number of bytes above 0, not ${JSON.stringify(opts.walLimitBytes)}`,
      );
    const create = opts.create !== false && ctx.create !== false;
    this.db = openDatabase(this.file, { ...opts, create });
    try {
      if (!opts.readonly) migrateSchema(this.db, this.file, create);
      else checkSchema(this.db, this.file);
      if (!opts.readonly && create) ensureFeedSchema(this.db, opts);
      this.feed = new SqliteFeed(this.db, (cause) => mapSqliteError(cause, this.file), opts);
      this.db.function(
        'procreg_replace',
        { deterministic: false, varargs: false },
        (namespace, key, pid, node, meta, registeredAt, updatedAt, pidStart) =>
          this.replaceIf(
            fromRow({
              namespace,
              key,
              pid,
              node,
              meta,
              registered_at: registeredAt,
              updated_at: updatedAt,
              pid_start: pidStart,
            }),
          )
            ? 1
            : 0,
      );
      this.st = prepareStatements(this.db);
      this.index = MetaIndex.open(this.db, { writable: !opts.readonly && create, fields: opts.indexFields });
    } catch (cause) {
      this.db.close();
      throw mapSqliteError(cause, this.file);
    }
    guardMethods(this, this.file);
    notifyAfterWrites(this, () => this.feed.afterWrite());
  }

  private check(): void {
    if (this.closed) throw new ClosedError(`the sqlite backend (${this.file})`);
  }

  register(entry: Registration, opts: RegisterOptions): RegisterOutcome {
    this.check();
    this.replaceIf = opts.replaceIf;
    if (this.upsert(entry)) return { ok: true, entry };
    // Refused. The holder named must be the one that refused: another process may change the row
    // between two autocommit statements (and register our own pid: a "conflict" naming ourselves),
    // so try again and read the holder under one write lock (issue 13: found by the SQLite
    // multi-process linearizability scenario).
    return this.db
      .transaction((): RegisterOutcome => {
        if (this.upsert(entry)) return { ok: true, entry };
        const holder = this.lookup(entry.namespace, entry.key);
        if (!holder) throw new RegistryError('INTERNAL', `register of "${entry.key}" refused by no holder`);
        return { ok: false, holder };
      })
      .immediate();
  }

  /** The upsert: true when the entry was written (new, or the holder replaced). */
  private upsert(entry: Registration): boolean {
    return (
      this.st.upsert.run(
        entry.namespace,
        entry.key,
        entry.pid,
        entry.node,
        JSON.stringify(entry.meta),
        entry.registeredAt,
        entry.updatedAt,
        entry.pidStart ?? null,
      ).changes === 1
    );
  }

  lookup(namespace: string, key: string): Registration | undefined {
    if (this.closed) this.check();
    const row = this.st.get.get(namespace, key) as Row | undefined;
    return row && fromRow(row);
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition): boolean {
    this.check();
    if (!cond) return this.st.del.run(namespace, key).changes > 0;
    return (
      this.st.delIf.run({
        ns: namespace,
        key,
        pid: cond.pid ?? null,
        at: cond.registeredAt ?? null,
        node: cond.node ?? null,
      }).changes > 0
    );
  }

  list(namespace: string, opts: ListOptions): Page {
    this.check();
    const term = this.index.pick(opts.where);
    if (term) return listIndexed(this.index, namespace, opts, term, fromRow, (e) => matchesWhere(e.meta, opts.where));
    const limit = opts.limit ?? 1000;
    const plan = opts.where?.length ? { method: 'scan' as const, scanned: 0 } : undefined;
    const done = (p: Page): Page => (plan ? { ...p, plan } : p);
    const items: Registration[] = [];
    let cursor = opts.after;
    const filtered = !!opts.where?.length;
    const chunk = filtered ? SCAN_CHUNK : limit + 1;
    // A filtered scan stops after SCAN_SLICE_MS with a short page and a cursor: the caller yields
    // to the event loop between calls (an unindexed --where reads the whole namespace).
    const until = filtered ? performance.now() + SCAN_SLICE_MS : Infinity;
    for (;;) {
      if (cursor !== undefined && until !== Infinity && performance.now() >= until) return { items, next: cursor };
      const rows = (
        cursor === undefined ? this.st.pageFirst.all(namespace, chunk) : this.st.page.all(namespace, cursor, chunk)
      ) as Row[];
      if (plan) plan.scanned += rows.length;
      for (const row of rows) {
        const e = fromRow(row);
        if (!matchesWhere(e.meta, opts.where)) {
          cursor = e.key;
          continue;
        }
        if (items.length === limit) return done({ items, next: pageEnd(items, limit) });
        items.push(e);
        cursor = e.key;
      }
      if (rows.length < chunk) return done({ items });
      if (items.length === limit) {
        // A full page: is there anything after it?
        return done({ items, next: cursor });
      }
    }
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions): Registration | undefined {
    this.check();
    return this.db
      .transaction(() => {
        const existing = this.lookup(namespace, key);
        if (!existing) return undefined;
        const next: Registration = {
          ...existing,
          meta: opts.merge ? (mergePatch(existing.meta, meta) as Meta) : meta,
          updatedAt: Date.now(),
        };
        opts.validate?.(next.meta);
        this.st.setMeta.run(JSON.stringify(next.meta), next.updatedAt, namespace, key);
        return next;
      })
      .immediate();
  }

  /** Stored entries: the per-process counts' sum (sqlite-counts.ts), else a `count(*)`. */
  count(namespace?: string): number {
    this.check();
    return (
      countStoredFromTable(this.db, namespace) ??
      ((namespace === undefined ? this.st.countAll.get() : this.st.count.get(namespace)) as { n: number }).n
    );
  }

  /** Live entries, each process judged once: from the per-process counts, else through the process index. */
  countLive(namespace?: string): number {
    this.check();
    const isAlive = (probe: Registration) => this.ctx.isAlive(probe);
    return (
      countLiveFromTable(this.db, namespace, this.ctx.nodeName, isAlive) ??
      countLive(this.db, namespace, this.ctx.nodeName, isAlive)
    );
  }

  namespaces(): string[] {
    this.check();
    // One index seek per namespace (DISTINCT would read every row).
    const out: string[] = [];
    for (
      let ns = this.st.firstNamespace.pluck().get() as string | undefined;
      ns !== undefined;
      ns = this.st.nextNamespace.pluck().get(ns) as string | undefined
    )
      out.push(ns);
    return out;
  }

  /**
   * Counts, liveness and file figures. Fast on a million rows: the total is SQLite's b-tree count,
   * the distinct processes are found by skip-scanning the (node, pid, pid_start) index (one seek per
   * process), each is judged once, and only the entries of dead processes are counted (see
   * `countDead`). Read-only, in one read transaction so the figures agree with each other.
   */
  healthCheck(): HealthReport {
    this.check();
    try {
      return measureHealth(this.db, this.st, this.file, this.walLimit, (probe) => this.ctx.isAlive(probe));
    } catch (cause) {
      const e = mapSqliteError(cause, this.file);
      // A damaged file is the worst health there is (exit 5), not an internal error.
      if (!isDamage(cause)) throw e;
      return {
        status: 'unhealthy',
        reasons: [e.message],
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        file: this.file,
        damaged: true,
      };
    }
  }

  /**
   * `PRAGMA quick_check`: every page and b-tree is well formed (not index-vs-table agreement, which
   * the full integrity_check adds at several times the cost). Run before reading everything (dump,
   * list/count --all-namespaces). Cost: docs/design.md §2 (about 0.2 s per 100k entries).
   */
  checkIntegrity(): IntegrityReport {
    this.check();
    return quickCheck(this.db);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.feed.close();
    try {
      if (!this.db.readonly && this.db.inTransaction === false) this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // another process may hold the database; the checkpoint is an optimisation
    }
    this.db.close();
  }

  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): BulkResult[] {
    this.check();
    const run = () => entries.map((e) => this.register(e, opts));
    if (!opts.atomic) return this.db.transaction(run).immediate();
    return this.transaction(() => {
      const results = run();
      if (results.some((r) => !r.ok)) throw new AtomicAbort(rolledBack(results));
      return results;
    });
  }

  transaction<T>(fn: () => T): T {
    this.check();
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      if (e instanceof AtomicAbort) return e.results as T;
      throw e;
    }
  }

  clearNamespace(namespace: string): number {
    this.check();
    return this.st.clear.run(namespace).changes;
  }

  processes(node: string): ProcessSummary[] {
    this.check();
    return this.st.processes.all(node) as ProcessSummary[];
  }

  removeProcesses(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>): number {
    this.check();
    return this.db
      .transaction(() => procs.reduce((n, p) => n + this.st.removeProcess.run(node, p.pid, p.pidStart).changes, 0))
      .immediate();
  }

  processesAfter(
    node: string,
    after: Pick<ProcessSummary, 'pid' | 'pidStart'> | undefined,
    limit: number,
  ): ProcessSummary[] {
    this.check();
    return processesAfter(this.db, node, after, limit);
  }

  removeProcessEntries(node: string, proc: Pick<ProcessSummary, 'pid' | 'pidStart'>, limit: number): number {
    this.check();
    return removeProcessEntries(this.db, node, proc, limit);
  }

  /** Restore through a staging table and one swap, the WAL bounded (src/backends/sqlite-restore.ts). */
  async restoreAll(plan: RestorePlan): Promise<RestoreApplied> {
    this.check();
    try {
      return await restoreStaged(this.db, plan);
    } catch (cause) {
      throw mapSqliteError(cause, this.file);
    }
  }

  /** Discard the staging table of a restore killed before its swap. */
  async resumeRestore(): Promise<RestoreApplied['recovered']> {
    this.check();
    return discardStaged(this.db);
  }

  digest(namespace: string, buckets: number): Promise<BucketDigests> {
    this.check();
    return digestInSlices(this.db, namespace, buckets);
  }

  /** Digests off the event loop, in a worker on its own connection (src/backends/sqlite-digest.ts). */
  offThreadDigests() {
    return offThreadDigester(this.file);
  }

  compact(): CompactReport {
    this.check();
    return compactDatabase(this.db);
  }

  /** Record the time of a sweep (shown by health). */
  markCleanup(at: number): void {
    this.st.setInfo.run('last_cleanup', String(at));
  }

  watch(...args: Parameters<SqliteFeed['watch']>): () => void {
    this.check();
    return this.feed.watch(...args);
  }

  currentRevision(): number {
    this.check();
    return this.feed.currentRevision();
  }

  lookupAt(namespace: string, key: string): { entry: Registration | undefined; revision: number } {
    this.check();
    return this.feed.lookupAt(() => this.lookup(namespace, key));
  }
}

// --- helpers -----------------------------------------------------------------------------------

/** A filtered `list` reads rows SCAN_CHUNK at a time for about SCAN_SLICE_MS, then answers a short page with a cursor. */
const SCAN_CHUNK = 128;
const SCAN_SLICE_MS = 4;

/** The public methods whose SQLite errors (locked, disk full, damaged) become typed registry errors. */
const GUARDED = [
  'register',
  'lookup',
  'unregister',
  'list',
  'updateMetadata',
  'count',
  'countLive',
  'namespaces',
  'healthCheck',
  'checkIntegrity',
  'bulkRegister',
  'transaction',
  'clearNamespace',
  'processes',
  'removeProcesses',
  'processesAfter',
  'removeProcessEntries',
  'digest',
  'compact',
  'markCleanup',
  'watch',
  'currentRevision',
  'lookupAt',
] as const satisfies ReadonlyArray<keyof SqliteBackend>;

/**
 * Wrap each guarded method so a SQLite error surfaces as the registry error it means (a locked
 * file after busy_timeout, a full disk: exit 6 naming the file) instead of an internal error.
 */
function guardMethods(b: SqliteBackend, file: string): void {
  const self = b as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of GUARDED) {
    const f = self[name]!.bind(b);
    self[name] = (...args: unknown[]) => {
      try {
        return f(...args);
      } catch (cause) {
        throw mapSqliteError(cause, file);
      }
    };
  }
}

class AtomicAbort extends Error {
  constructor(readonly results: BulkResult[]) {
    super('atomic bulk register aborted');
  }
}

/** The `next` cursor of a full page: its last key (only a page size below 1 makes an empty page full). */
export function pageEnd(items: Registration[], limit: number): string {
  const last = items.at(-1);
  if (last === undefined) throw new InvalidInputError(`invalid page size ${limit}: use a whole number of at least 1`);
  return last.key;
}

function fromRow(r: Row): Registration {
  return {
    namespace: r.namespace,
    key: r.key,
    pid: r.pid,
    node: r.node,
    meta: JSON.parse(r.meta) as Meta,
    registeredAt: r.registered_at,
    updatedAt: r.updated_at,
    pidStart: r.pid_start,
  };
}
