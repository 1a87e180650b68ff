/**
 * The legacy layout's rows read as registrations (design §5): the two tables' entries, the listing
 * rule that picks the effective one, and the anomaly report (`inspect`, health) of one streaming
 * pass over both tables and the derived ones. Split from legacy.ts, which re-exports it.
 */
import type DatabaseT from 'better-sqlite3';
import { InvalidInputError, type Meta, type Registration } from './contract.js';

/** One key as the two tables hold it. */
export interface LegacyRow {
  namespace: string;
  service: string;
  rpid: number | null;
  rnode: string | null;
  bpid: number | null;
  bnode: string | null;
  metadata: string | null;
}

export function registryEntry(namespace: string, key: string, pid: number, node: string): Registration {
  return { namespace, key, pid, node, meta: {}, registeredAt: 0, updatedAt: 0, pidStart: null };
}

export function backupEntry(
  namespace: string,
  key: string,
  pid: number,
  node: string,
  metadata: string,
  file: string,
): Registration {
  let meta: unknown;
  try {
    meta = JSON.parse(metadata);
  } catch (cause) {
    throw new InvalidInputError(
      `${file}: backup row ${namespace}/${key} has metadata that is not JSON (${JSON.stringify(metadata.slice(0, 40))}): fix the row`,
      { cause },
    );
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) {
    throw new InvalidInputError(
      `${file}: backup row ${namespace}/${key} has metadata that is not a JSON object: fix the row`,
    );
  }
  return { namespace, key, pid, node, meta: meta as Meta, registeredAt: 0, updatedAt: 0, pidStart: null };
}

/** The listing rule: dead rows dropped, then the backup row wins. */
export function effectiveEntry(
  row: LegacyRow,
  isAlive: (e: Registration) => boolean,
  file: string,
): Registration | undefined {
  if (row.bpid !== null) {
    const b = backupEntry(row.namespace, row.service, row.bpid, row.bnode!, row.metadata ?? '{}', file);
    if (isAlive(b)) return b;
  }
  if (row.rpid !== null) {
    const r = registryEntry(row.namespace, row.service, row.rpid, row.rnode!);
    if (isAlive(r)) return r;
  }
  return undefined;
}

/**
 * The effective view straight from the tables: one SQL join over both, the listing rule applied
 * row by row (not through the backend's paging). What `migrate wrap` proves the service's view equals.
 */
export function* effectiveEntries(
  db: DatabaseT.Database,
  isAlive: (e: Registration) => boolean,
  file: string,
): Generator<Registration> {
  const rows = db
    .prepare(
      `SELECT k.namespace AS namespace, k.service AS service, r.pid AS rpid, r.node AS rnode, b.pid AS bpid, b.node AS bnode, b.metadata AS metadata
       FROM (SELECT namespace, service FROM registry UNION SELECT namespace, service FROM process_registry_backup) k
       LEFT JOIN registry r USING (namespace, service) LEFT JOIN process_registry_backup b USING (namespace, service)`,
    )
    .iterate() as IterableIterator<LegacyRow>;
  for (const row of rows) {
    const e = effectiveEntry(row, isAlive, file);
    if (e) yield e;
  }
}

/** The anomaly report in one line (`migrate wrap`'s note). */
export function anomalySummary(a: LegacyAnomalyReport): string {
  return (
    `anomalies: ${a.pidMismatch} keys with different pids, ${a.onlyInRegistry} only in registry, ${a.onlyInBackup} only in backup, ` +
    `${a.deadRegistryRows + a.deadBackupRows} dead rows, ${a.lookupListingDisagree} keys where lookup and listing disagree, ` +
    `${a.staleIndexRows} stale index rows, ${a.staleCacheRows} stale cache rows`
  );
}

/** What `wrap` and health report about a legacy file. */
export interface LegacyAnomalyReport {
  /** Keys in the effective view. */
  effective: number;
  registryRows: number;
  backupRows: number;
  onlyInRegistry: number;
  onlyInBackup: number;
  /** Keys in both tables with a different pid or node. */
  pidMismatch: number;
  deadRegistryRows: number;
  deadBackupRows: number;
  /** Keys where the legacy lookup and the listing disagree (design §5). */
  lookupListingDisagree: number;
  staleIndexRows: number;
  staleCacheRows: number;
  divergent: number;
  /** Up to `sample` anomalous keys, with why. */
  samples: Array<{ namespace: string; key: string; kind: string; detail: string }>;
  counts(): Record<string, number>;
}

/**
 * One streaming pass over both tables (and the derived ones) reporting every kind of anomaly of
 * design §5. Bounded memory: rows are merged in key order by SQLite; samples are capped.
 */
export function legacyAnomalies(
  db: DatabaseT.Database,
  isAlive: (e: Registration) => boolean,
  file: string,
  sample = 20,
): LegacyAnomalyReport {
  const r: LegacyAnomalyReport = {
    effective: 0,
    registryRows: 0,
    backupRows: 0,
    onlyInRegistry: 0,
    onlyInBackup: 0,
    pidMismatch: 0,
    deadRegistryRows: 0,
    deadBackupRows: 0,
    lookupListingDisagree: 0,
    staleIndexRows: 0,
    staleCacheRows: 0,
    divergent: 0,
    samples: [],
    counts() {
      const { samples: _s, counts: _c, ...rest } = this;
      return rest;
    },
  };
  const note = (namespace: string, key: string, kind: string, detail: string) => {
    if (r.samples.length < sample) r.samples.push({ namespace, key, kind, detail });
  };
  const rows = db
    .prepare(
      `SELECT k.namespace AS namespace, k.service AS service, r.pid AS rpid, r.node AS rnode, b.pid AS bpid, b.node AS bnode, b.metadata AS metadata
       FROM (SELECT namespace, service FROM registry UNION SELECT namespace, service FROM process_registry_backup) k
       LEFT JOIN registry r ON r.namespace = k.namespace AND r.service = k.service
       LEFT JOIN process_registry_backup b ON b.namespace = k.namespace AND b.service = k.service`,
    )
    .iterate() as IterableIterator<LegacyRow>;
  for (const row of rows) {
    const { namespace, service } = row;
    const reg = row.rpid !== null ? registryEntry(namespace, service, row.rpid, row.rnode!) : undefined;
    const bak =
      row.bpid !== null ? backupEntry(namespace, service, row.bpid, row.bnode!, row.metadata ?? '{}', file) : undefined;
    const regAlive = reg ? isAlive(reg) : false;
    const bakAlive = bak ? isAlive(bak) : false;
    if (reg) r.registryRows++;
    if (bak) r.backupRows++;
    if (reg && !regAlive) {
      r.deadRegistryRows++;
      note(namespace, service, 'dead-registry-row', `registry row pid ${reg.pid} on ${reg.node} is dead`);
    }
    if (bak && !bakAlive) {
      r.deadBackupRows++;
      note(namespace, service, 'dead-backup-row', `backup row pid ${bak.pid} on ${bak.node} is dead`);
    }
    if (reg && !bak) {
      r.onlyInRegistry++;
      note(namespace, service, 'only-in-registry', `pid ${reg.pid} on ${reg.node}, no backup row`);
    }
    if (bak && !reg) r.onlyInBackup++;
    if (reg && bak && (reg.pid !== bak.pid || reg.node !== bak.node)) {
      r.pidMismatch++;
      note(
        namespace,
        service,
        'pid-mismatch',
        `registry pid ${reg.pid}@${reg.node}, backup pid ${bak.pid}@${bak.node}`,
      );
    }
    const eff = bakAlive ? bak : regAlive ? reg : undefined;
    if (eff) r.effective++;
    const looked = reg ? (regAlive ? reg : undefined) : bakAlive ? bak : undefined;
    if ((looked?.pid ?? null) !== (eff?.pid ?? null) || (looked?.node ?? null) !== (eff?.node ?? null)) {
      r.lookupListingDisagree++;
      note(
        namespace,
        service,
        'lookup-listing-disagree',
        `lookup gives ${looked ? `pid ${looked.pid}` : 'not-found'}, listing gives ${eff ? `pid ${eff.pid}` : 'nothing'}`,
      );
    }
  }
  r.divergent = r.onlyInRegistry + r.pidMismatch;
  // Derived rows are stale when they do not describe the effective entry of their key.
  const join = (t: string) => `LEFT JOIN registry r ON r.namespace = ${t}.namespace AND r.service = ${t}.service
       LEFT JOIN process_registry_backup b ON b.namespace = ${t}.namespace AND b.service = ${t}.service`;
  type Derived = LegacyRow & { ipid: number; inode: string; field?: string; value?: string };
  const cols = 'r.pid AS rpid, r.node AS rnode, b.pid AS bpid, b.node AS bnode, b.metadata AS metadata';
  const indexRows = db
    .prepare(
      `SELECT i.namespace AS namespace, i.service AS service, i.field AS field, i.value AS value, i.pid AS ipid, i.node AS inode, ${cols} FROM process_registry_metadata_index i ${join('i')}`,
    )
    .iterate() as IterableIterator<Derived>;
  for (const ix of indexRows) {
    const e = effectiveEntry(ix, isAlive, file);
    const v = e?.meta[ix.field!];
    const holds = Array.isArray(v)
      ? v.some((x) => String(x) === ix.value)
      : v !== undefined && v !== null && String(v) === ix.value;
    if (!e || e.pid !== ix.ipid || e.node !== ix.inode || !holds) {
      r.staleIndexRows++;
      note(ix.namespace, ix.service, 'stale-index-row', `${ix.field}=${ix.value} for pid ${ix.ipid}`);
    }
  }
  const cacheRows = db
    .prepare(
      `SELECT c.namespace AS namespace, c.service AS service, c.pid AS ipid, c.node AS inode, ${cols} FROM process_registry_cache c ${join('c')}`,
    )
    .iterate() as IterableIterator<Derived>;
  for (const c of cacheRows) {
    const e = effectiveEntry(c, isAlive, file);
    if (!e || e.pid !== c.ipid || e.node !== c.inode) {
      r.staleCacheRows++;
      note(c.namespace, c.service, 'stale-cache-row', `cached pid ${c.ipid} on ${c.inode}`);
    }
  }
  return r;
}
