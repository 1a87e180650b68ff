/**
 * `legacy:PATH` — the legacy dual-storage registry (design §5, the seed's diagram 1) as a SQLite
 * file with four tables, read and written with EXACTLY the legacy semantics:
 *
 *   registry                         native Registry rows (no metadata)
 *   process_registry_backup          ETS backup table (with metadata)
 *   process_registry_metadata_index  optimization index (only grew: derived, never migrated)
 *   process_registry_cache           cached_lookup rows (no TTL: derived, never migrated)
 *
 * - lookup: the `registry` row first — a live hit wins with metadata `{}`, a dead hit is
 *   not-found with NO fallback — else the backup row, where a dead hit is deleted.
 * - list: both tables merged per key, dead rows dropped first, then the backup row wins. This
 *   listing is the *effective view*, what a migration moves.
 * - register checks and writes the backup table only (as the legacy code did);
 *   unregister removes the key from both tables.
 *
 * Liveness is part of those rules (a dead registry hit hides a live backup row), so this backend
 * applies them itself with `ctx.isAlive` and hands the service only live entries. Legacy rows have
 * no timestamps: registeredAt = updatedAt = 0, pidStart = null.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type DatabaseT from 'better-sqlite3';
import {
  type Backend,
  type BackendContext,
  type BucketDigests,
  type BulkResult,
  type Capabilities,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  InvalidInputError,
  type ListOptions,
  type Meta,
  type Page,
  type ProcessSummary,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  statusFromDeadShare,
  type UnregisterCondition,
  UnreachableError,
  type UpdateOptions,
  type InspectReport,
} from './contract.js';
import { mapSqliteError, openDatabase, pageEnd } from './sqlite.js';
import { matchesWhere, mergePatch } from '../core/meta.js';
import { BucketDigester } from '../core/digest.js';
import {
  anomalySummary,
  backupEntry,
  effectiveEntries,
  effectiveEntry,
  legacyAnomalies,
  type LegacyRow,
  registryEntry,
} from './legacy-rows.js';

export {
  backupEntry,
  effectiveEntry,
  legacyAnomalies,
  type LegacyAnomalyReport,
  type LegacyRow,
  registryEntry,
} from './legacy-rows.js';

export const LEGACY_BACKEND = 'legacy';

/** The legacy layout, verbatim from design §5. */
export const LEGACY_SCHEMA = `
CREATE TABLE registry (namespace TEXT NOT NULL, service TEXT NOT NULL, pid INTEGER NOT NULL,
  node TEXT NOT NULL, PRIMARY KEY (namespace, service));
CREATE TABLE process_registry_backup (namespace TEXT NOT NULL, service TEXT NOT NULL,
  pid INTEGER NOT NULL, node TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (namespace, service));
CREATE TABLE process_registry_metadata_index (namespace TEXT, field TEXT, value TEXT,
  service TEXT, pid INTEGER, node TEXT, metadata TEXT);
CREATE TABLE process_registry_cache (namespace TEXT, service TEXT, pid INTEGER, node TEXT,
  cached_at INTEGER, PRIMARY KEY (namespace, service));
`;

export const LEGACY_TABLES = [
  'registry',
  'process_registry_backup',
  'process_registry_metadata_index',
  'process_registry_cache',
] as const;

export interface LegacyOptions {
  /** Create the file with the legacy schema when it does not exist (tests, fixture generator). Default false. */
  create?: boolean;
  /** busy_timeout in ms (default 5000). */
  busyTimeout?: number;
  /** Open read-only. */
  readonly?: boolean;
}

export function createLegacyBackend(location: string, opts: LegacyOptions, ctx: BackendContext): Backend {
  return new LegacyBackend(location, opts, ctx);
}

/** Open a legacy file, refusing anything that is not one (InvalidInputError, exit 2). */
export function openLegacyDatabase(location: string, opts: LegacyOptions = {}): DatabaseT.Database {
  if (!location) throw new InvalidInputError('legacy: needs a file path, e.g. legacy:./old-registry.db');
  const file = resolve(location);
  const fresh = !existsSync(file);
  if (fresh && !opts.create)
    throw new UnreachableError(`legacy database ${file} does not exist: check the path given as legacy:`, {
      recoverable: false,
    });
  const db = openDatabase(file, { readonly: opts.readonly, busyTimeout: opts.busyTimeout, create: !!opts.create });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
    if (tables.length === 0 && opts.create && !opts.readonly) {
      db.exec(`BEGIN; ${LEGACY_SCHEMA} COMMIT;`);
    } else {
      const missing = LEGACY_TABLES.filter((t) => !tables.includes(t));
      if (missing.length > 0) {
        const what = tables.includes('registrations')
          ? 'a procreg database (open it as sqlite:)'
          : tables.length
            ? `other tables (${tables.slice(0, 5).join(', ')})`
            : 'no tables';
        throw new InvalidInputError(
          `${file} is not a legacy dual-storage registry: it holds ${what}, and lacks ${missing.join(', ')}`,
        );
      }
      checkColumns(db, file);
    }
  } catch (cause) {
    db.close();
    throw mapSqliteError(cause, file);
  }
  return db;
}

class LegacyBackend implements Backend {
  readonly name = LEGACY_BACKEND;
  readonly url: string;
  readonly capabilities: Capabilities = {
    ...defaultCapabilities,
    synchronous: true,
    bulkRegister: true,
    digest: true,
    persistent: true,
    transactions: true,
    startTimes: false,
  };

  readonly db: DatabaseT.Database;
  readonly file: string;
  private closed = false;
  private readonly st: ReturnType<LegacyBackend['prepare']>;

  constructor(
    location: string,
    opts: LegacyOptions,
    private readonly ctx: BackendContext,
  ) {
    // A read-only opener never creates one, whatever backendOpts say.
    this.db = openLegacyDatabase(location, ctx.create === false ? { ...opts, create: false } : opts);
    this.file = resolve(location);
    this.url = `legacy:${this.file}`;
    try {
      this.st = this.prepare();
    } catch (cause) {
      this.db.close();
      throw mapSqliteError(cause, this.file);
    }
  }

  private prepare() {
    const db = this.db;
    const merged = (cond: string) => `
      SELECT k.namespace AS namespace, k.service AS service, r.pid AS rpid, r.node AS rnode, b.pid AS bpid, b.node AS bnode, b.metadata AS metadata
      FROM (SELECT namespace, service FROM registry WHERE ${cond}
            UNION SELECT namespace, service FROM process_registry_backup WHERE ${cond}
            ORDER BY service LIMIT @limit) k
      LEFT JOIN registry r ON r.namespace = k.namespace AND r.service = k.service
      LEFT JOIN process_registry_backup b ON b.namespace = k.namespace AND b.service = k.service
      ORDER BY k.service`;
    return {
      getReg: db.prepare('SELECT pid, node FROM registry WHERE namespace = ? AND service = ?'),
      getBak: db.prepare('SELECT pid, node, metadata FROM process_registry_backup WHERE namespace = ? AND service = ?'),
      putBak: db.prepare(
        `INSERT INTO process_registry_backup (namespace, service, pid, node, metadata) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (namespace, service) DO UPDATE SET pid = excluded.pid, node = excluded.node, metadata = excluded.metadata`,
      ),
      delBakIf: db.prepare(
        'DELETE FROM process_registry_backup WHERE namespace = ? AND service = ? AND pid = ? AND node = ?',
      ),
      delReg: db.prepare(
        'DELETE FROM registry WHERE namespace = @ns AND service = @key AND (@pid IS NULL OR pid = @pid) AND (@node IS NULL OR node = @node)',
      ),
      delBak: db.prepare(
        'DELETE FROM process_registry_backup WHERE namespace = @ns AND service = @key AND (@pid IS NULL OR pid = @pid) AND (@node IS NULL OR node = @node)',
      ),
      pageFirst: db.prepare(merged('namespace = @ns')),
      page: db.prepare(merged('namespace = @ns AND service > @after')),
      count: db.prepare(
        'SELECT count(*) AS n FROM (SELECT service FROM registry WHERE namespace = ? UNION SELECT service FROM process_registry_backup WHERE namespace = ?)',
      ),
      countAll: db.prepare(
        'SELECT count(*) AS n FROM (SELECT namespace, service FROM registry UNION SELECT namespace, service FROM process_registry_backup)',
      ),
      namespaces: db.prepare(
        'SELECT namespace FROM registry UNION SELECT namespace FROM process_registry_backup ORDER BY namespace',
      ),
      processes: db.prepare(
        'SELECT pid, NULL AS pidStart, count(*) AS count FROM (SELECT pid FROM registry WHERE node = @node UNION ALL SELECT pid FROM process_registry_backup WHERE node = @node) GROUP BY pid',
      ),
      removeReg: db.prepare('DELETE FROM registry WHERE node = ? AND pid = ?'),
      removeBak: db.prepare('DELETE FROM process_registry_backup WHERE node = ? AND pid = ?'),
    };
  }

  private check(): void {
    if (this.closed) throw new ClosedError(`the legacy backend (${this.file})`);
  }

  /** The effective entry of one key as the listing sees it (dead rows dropped, backup wins). */
  effective(row: LegacyRow): Registration | undefined {
    return effectiveEntry(row, (e) => this.ctx.isAlive(e), this.file);
  }

  register(entry: Registration, opts: RegisterOptions): RegisterOutcome {
    this.check();
    return this.db
      .transaction((): RegisterOutcome => {
        const b = this.st.getBak.get(entry.namespace, entry.key) as
          { pid: number; node: string; metadata: string } | undefined;
        if (b) {
          const holder = backupEntry(entry.namespace, entry.key, b.pid, b.node, b.metadata, this.file);
          if (!opts.replaceIf(holder)) return { ok: false, holder };
          this.st.putBak.run(entry.namespace, entry.key, entry.pid, entry.node, JSON.stringify(entry.meta));
          return { ok: true, entry: legacyShape(entry), replaced: holder };
        }
        this.st.putBak.run(entry.namespace, entry.key, entry.pid, entry.node, JSON.stringify(entry.meta));
        return { ok: true, entry: legacyShape(entry) };
      })
      .immediate();
  }

  lookup(namespace: string, key: string): Registration | undefined {
    this.check();
    const r = this.st.getReg.get(namespace, key) as { pid: number; node: string } | undefined;
    if (r) {
      const e = registryEntry(namespace, key, r.pid, r.node);
      // A live hit wins with metadata {}; a dead hit is not-found, with no fallback.
      return this.ctx.isAlive(e) ? e : undefined;
    }
    const b = this.st.getBak.get(namespace, key) as { pid: number; node: string; metadata: string } | undefined;
    if (!b) return undefined;
    const e = backupEntry(namespace, key, b.pid, b.node, b.metadata, this.file);
    if (this.ctx.isAlive(e)) return e;
    this.st.delBakIf.run(namespace, key, b.pid, b.node); // a dead backup hit is deleted
    return undefined;
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition): boolean {
    this.check();
    // Legacy rows carry no timestamps (0): a condition on another registeredAt matches nothing.
    if (cond?.registeredAt !== undefined && cond.registeredAt !== 0) return false;
    const p = { ns: namespace, key, pid: cond?.pid ?? null, node: cond?.node ?? null };
    return this.db.transaction(() => this.st.delReg.run(p).changes + this.st.delBak.run(p).changes > 0).immediate();
  }

  list(namespace: string, opts: ListOptions): Page {
    this.check();
    const limit = opts.limit ?? 1000;
    const items: Registration[] = [];
    let after = opts.after;
    const chunk = Math.max(limit + 1, 256);
    for (;;) {
      const rows = (
        after === undefined
          ? this.st.pageFirst.all({ ns: namespace, limit: chunk })
          : this.st.page.all({ ns: namespace, after, limit: chunk })
      ) as LegacyRow[];
      for (const row of rows) {
        after = row.service;
        const e = this.effective(row);
        if (!e || !matchesWhere(e.meta, opts.where)) continue;
        if (items.length === limit) return { items, next: pageEnd(items, limit) };
        items.push(e);
      }
      if (rows.length < chunk) return { items };
    }
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions): Registration | undefined {
    this.check();
    return this.db
      .transaction(() => {
        const current = this.lookup(namespace, key);
        if (!current) return undefined;
        const b = this.st.getBak.get(namespace, key) as { pid: number; node: string; metadata: string } | undefined;
        const base = b ? backupEntry(namespace, key, b.pid, b.node, b.metadata, this.file) : current;
        const next: Registration = { ...base, meta: opts.merge ? (mergePatch(base.meta, meta) as Meta) : meta };
        opts.validate?.(next.meta);
        // The legacy update wrote the ETS backup row (a key only in `registry` gains one).
        this.st.putBak.run(namespace, key, next.pid, next.node, JSON.stringify(next.meta));
        return next;
      })
      .immediate();
  }

  count(namespace?: string): number {
    this.check();
    return (
      (namespace === undefined ? this.st.countAll.get() : this.st.count.get(namespace, namespace)) as { n: number }
    ).n;
  }

  namespaces(): string[] {
    this.check();
    return this.st.namespaces.pluck().all() as string[];
  }

  healthCheck(): HealthReport {
    this.check();
    const d = legacyAnomalies(this.db, (e) => this.ctx.isAlive(e), this.file);
    const base = statusFromDeadShare(d.effective, d.deadRegistryRows + d.deadBackupRows);
    const reasons = [...base.reasons];
    if (d.divergent > 0)
      reasons.push(
        `${d.divergent} keys differ between the registry and backup tables (run \`registry migrate wrap\` for the list)`,
      );
    if (d.staleIndexRows + d.staleCacheRows > 0)
      reasons.push(`${d.staleIndexRows} stale index rows and ${d.staleCacheRows} stale cache rows`);
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pageCount = this.db.pragma('page_count', { simple: true }) as number;
    return {
      status: base.status === 'healthy' && d.divergent > 0 ? 'degraded' : base.status,
      registrations: d.effective + d.deadRegistryRows + d.deadBackupRows,
      alive: d.effective,
      dead: d.deadRegistryRows + d.deadBackupRows,
      memoryBytes: pageSize * pageCount,
      lastCleanup: null,
      reasons,
      file: this.file,
      ...d.counts(),
    };
  }

  inspect(): InspectReport {
    this.check();
    const a = legacyAnomalies(this.db, (e) => this.ctx.isAlive(e), this.file);
    return { counts: a.counts(), samples: a.samples, summary: anomalySummary(a) };
  }

  *rawEntries(): Iterable<Registration> {
    this.check();
    yield* effectiveEntries(this.db, (e) => this.ctx.isAlive(e), this.file);
  }

  digest(namespace: string, buckets: number): BucketDigests {
    this.check();
    const d = new BucketDigester(buckets);
    let after: string | undefined;
    for (;;) {
      const page = this.list(namespace, { after, limit: 2000 });
      for (const e of page.items) d.add(e);
      if (!page.next) return d.result();
      after = page.next;
    }
  }

  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): BulkResult[] {
    this.check();
    const run = () => entries.map((e) => this.register(e, opts));
    if (!opts.atomic) return this.db.transaction(run).immediate();
    try {
      return this.db
        .transaction(() => {
          const results = run();
          if (results.some((r) => !r.ok)) throw new AtomicAbort(results);
          return results;
        })
        .immediate();
    } catch (e) {
      if (e instanceof AtomicAbort) return e.results;
      throw e;
    }
  }

  /** Distinct pids of `node` in either table (legacy rows have no start time). */
  processes(node: string): ProcessSummary[] {
    this.check();
    return this.st.processes.all({ node }) as ProcessSummary[];
  }

  /** The sweep of dead pids: their rows go from both tables (dead rows are never in the view). */
  removeProcesses(node: string, procs: Array<Pick<ProcessSummary, 'pid'>>): number {
    this.check();
    return this.db
      .transaction(() =>
        procs.reduce(
          (n, { pid }) => n + this.st.removeReg.run(node, pid).changes + this.st.removeBak.run(node, pid).changes,
          0,
        ),
      )
      .immediate();
  }

  transaction<T>(fn: () => T): T {
    this.check();
    return this.db.transaction(fn).immediate();
  }

  clearNamespace(namespace: string): number {
    this.check();
    return this.db
      .transaction(() => {
        const n = this.count(namespace);
        for (const t of LEGACY_TABLES) this.db.prepare(`DELETE FROM ${t} WHERE namespace = ?`).run(namespace);
        return n;
      })
      .immediate();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

// --- helpers -----------------------------------------------------------------------------------

class AtomicAbort extends Error {
  constructor(readonly results: BulkResult[]) {
    super('atomic bulk register aborted');
  }
}

function checkColumns(db: DatabaseT.Database, file: string): void {
  const need: Record<string, string[]> = {
    registry: ['namespace', 'service', 'pid', 'node'],
    process_registry_backup: ['namespace', 'service', 'pid', 'node', 'metadata'],
    process_registry_metadata_index: ['namespace', 'field', 'value', 'service', 'pid', 'node'],
    process_registry_cache: ['namespace', 'service', 'pid', 'node', 'cached_at'],
  };
  for (const [table, cols] of Object.entries(need)) {
    const have = (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name);
    const missing = cols.filter((c) => !have.includes(c));
    if (missing.length)
      throw new InvalidInputError(
        `${file} is not a legacy dual-storage registry: table ${table} lacks column(s) ${missing.join(', ')}`,
      );
  }
}

function legacyShape(e: Registration): Registration {
  return { ...e, registeredAt: 0, updatedAt: 0, pidStart: null };
}
