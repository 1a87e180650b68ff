/**
 * `etcd://H:P[,H:P…][/prefix]` — the registry on an etcd cluster (the seed's Horde backend).
 *
 * Unique names by txn (`createRevision == 0`: exactly one winner across any number of nodes);
 * replacing a holder (same pid, or dead) by a txn conditioned on the holder's modRevision; metadata
 * index keys and the process marker written in the same txn as the registration; liveness by leases held
 * by long-lived processes; a watch change feed; linearizable reads by default (read-your-writes
 * across nodes). Key layout (JSON values, readable with `etcdctl get --prefix /procreg`):
 *
 *   <prefix>/r/<ns>/<key>                              the registration (Registration as JSON)
 *   <prefix>/p/<node>/<pid>/<pidStart|->/<s|n>          process marker {pid,pidStart} (sweeps)
 *   <prefix>/i/<ns>/<field>/<value>/<key>              metadata index {pid}
 *   <prefix>/u/<ns>/<key>                              "not indexed" marker (too many values)
 *   <prefix>/c/<node>                                  last sweep of a node {at}
 *   <prefix>/x/journal, x/applier, x/last, x/s/<id>/…   restore journal and stage (etcd-restore.ts)
 *
 * `<node>`, `<field>` and `<value>` are percent-encoded (no `/`); `<ns>` cannot hold `/`; `<key>`
 * is raw UTF-8, so etcd's byte order is the registry's key order. Every key of a registration
 * shares its lease, so a lease's expiry removes the registration and its index keys at once.
 *
 * Process markers: one key per process (not per entry) tells a node's sweep which processes it
 * has to judge. Every write of a registration carries a nested txn `if createRevision(marker) == 0
 * then put marker`, so a marker exists whenever a registration of its process was written since
 * the marker was last removed. A sweep of a dead process deletes its marker first, then reads the
 * registrations (one snapshot) and compare-and-deletes those of the process: a write racing the
 * sweep either lands before the delete (the read sees it) or recreates the marker (the next sweep
 * sees it). A write with a session lease creates the `s` marker on its lease (it goes with the
 * session), a plain write the `n` marker with none (it stays as long as a plain registration may).
 *
 * Leases (design §1): `lease: 'session'` (default for long-lived openers: the service sweeps,
 * `BackendContext.longLived`) attaches what this process registers to leases it keeps alive, so
 * it vanishes within the TTL when the process dies; `lease: 'none'` (default for one-shot CLI
 * calls) writes plain keys that outlive the process, judged by the owning node's sweep. Because
 * etcd 3.4 applies a put with a lease in time linear in the keys already on that lease (etcd issue
 * 15993), a process holds a pool of leases of at most `keysPerLease` keys each (default 256).
 */
import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  type IKeyValue,
  type IRequestOp,
  type ICompare,
  type ITxnRequest,
  type ITxnResponse,
  type Lease,
  type Watcher,
} from 'etcd3';
import {
  type Backend,
  type BackendContext,
  type BucketDigests,
  type BulkResult,
  type Capabilities,
  type ChangeEvent,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  InvalidInputError,
  type ListOptions,
  type Meta,
  OutcomeUnknownError,
  type Page,
  type ProcessSummary,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  RegistryError,
  type RestoreApplied,
  type RestorePlan,
  statusFromDeadShare,
  UnauthorizedError,
  type UnregisterCondition,
  UnreachableError,
  type UpdateOptions,
  asRegistryError,
  CompactedError,
} from './contract.js';
import { BucketDigester } from '../core/digest.js';
import { type JournalHost, journalSummary, restoreWithJournal, resumeJournal } from './etcd-restore.js';
import { matchesCond } from './memory.js';
import { matchesWhere, mergePatch, scalarText } from '../core/meta.js';

export const ETCD_BACKEND = 'etcd';

/**
 * Keys attached to one session lease before another is granted. Measured on etcd 3.4.23 (bench/
 * etcd.bench.ts, docs/etcd.md): put throughput on a lease carrying 256 keys is 0.93× that on a
 * 16-key lease, 1.6× that on a 1000-key lease, 21× that on a 20,000-key lease; each extra lease
 * costs one keep-alive message per TTL/3.
 */
export const DEFAULT_KEYS_PER_LEASE = 256;

/** The seed's optimization-layer index fields (design §3). */
export const DEFAULT_INDEX_FIELDS = ['type', 'agent_type', 'priority', 'capabilities', 'category', 'tier', 'region'];

export interface EtcdOptions {
  /** `session`: registrations die with this process (lease); `none`: they outlive it. Default by use (see file header). */
  lease?: 'session' | 'none';
  /** Lease TTL in seconds (default 10). */
  leaseTtl?: number;
  /** Keys attached to one lease before another is granted (etcd issue 15993; default 256). */
  keysPerLease?: number;
  /** Metadata fields kept in the native index (default DEFAULT_INDEX_FIELDS). */
  indexFields?: string[];
  /** `linearizable` (default: read-your-writes across nodes) or `serializable` (local member, may be stale). */
  consistency?: 'linearizable' | 'serializable';
  /** Deadline of one etcd call in ms (default 2000). */
  callTimeout?: number;
  /** Total time spent retrying recoverable errors (leader election, a member down) in ms (default 6000). */
  retryTimeout?: number;
}

/** Parse `etcd://h:p[,h:p…][/prefix]` into endpoints and a key prefix (default `/procreg`). */
export function parseEtcdUrl(url: string): { endpoints: string[]; prefix: string } {
  const m = /^etcd:\/\/([^/]*)(\/.*)?$/i.exec(url.trim());
  const usage = 'use etcd://HOST:PORT[,HOST:PORT…][/prefix], e.g. etcd://127.0.0.1:2379/registry';
  if (!m || !m[1]) throw new InvalidInputError(`invalid etcd backend ${JSON.stringify(url)}: ${usage}`);
  const endpoints = m[1].split(',').map((h) => h.trim());
  for (const h of endpoints) {
    const hp = /^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i.exec(h);
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535)
      throw new InvalidInputError(`invalid etcd endpoint ${JSON.stringify(h)} in ${JSON.stringify(url)}: ${usage}`);
  }
  const prefix = (m[2] ?? '/procreg').replace(/\/+$/, '');
  if (/[\u0000-\u001f]/.test(prefix))
    throw new InvalidInputError(`invalid etcd key prefix ${JSON.stringify(prefix)}: no control characters`);
  return { endpoints, prefix };
}

/** What the etcd backend offers beyond the contract (lookupAt and currentRevision serve src/registry/lookup-cache.ts). */
export interface EtcdBackendApi extends Backend {
  /** The stored entry and the store revision it was read at. */
  lookupAt(namespace: string, key: string): Promise<{ entry: Registration | undefined; revision: number }>;
  /** The store's current revision (list-then-watch: list, then watch from it). */
  currentRevision(): Promise<number>;
  watch: NonNullable<Backend['watch']>;
}

export function createEtcdBackend(
  location: string,
  opts: EtcdOptions & Record<string, unknown>,
  ctx: BackendContext,
): Backend {
  const { endpoints, prefix } = parseEtcdUrl(location);
  // Long-lived openers (their sweep runs) tie registrations to their lifetime; one-shot callers
  // and openers that do not say (a bare openBackend) write keys that outlive them.
  const lease = opts.lease ?? (ctx.longLived ? 'session' : 'none');
  if (lease !== 'session' && lease !== 'none')
    throw new InvalidInputError(`invalid etcd lease mode ${JSON.stringify(lease)}: use "session" or "none"`);
  const ttl = opts.leaseTtl ?? 10;
  if (!Number.isInteger(ttl) || ttl < 2)
    throw new InvalidInputError(`invalid leaseTtl ${JSON.stringify(ttl)}: a whole number of seconds, at least 2`);
  return new EtcdBackend(endpoints, prefix, { ...opts, lease, leaseTtl: ttl }, ctx);
}

/** Most ops in one txn (etcd's --max-txn-ops default is 128; keep headroom). */
const MAX_TXN_OPS = 120;
/** Index keys of one registration beyond which it is marked "not indexed" instead. */
const MAX_INDEX_KEYS = 48;
/** Index values longer than this (bytes) are not indexed (queries for them scan). */
const MAX_INDEX_VALUE = 200;
/** Bulk txns in flight at once: etcd folds concurrent proposals into one raft round (3 members on 2 cores, `BENCH=migrate BENCH_MIGRATE=etcd`: 16 → 32 took a 100k copy from 5.6 s to 5.0 s). */
const BULK_CONCURRENCY = 32;
/** Bytes of values in one bulk txn (etcd's request limit is 1.5 MiB). */
const MAX_TXN_BYTES = 1024 * 1024;

/** Processes remembered per node by the marker cache before it starts over. */
const MARKER_CACHE_MAX = 200_000;

interface MarkerGeneration {
  /** modRevision of `g/<node>` ('0': absent) when `known` was started. */
  revision: string;
  known: Set<string>;
}

const CMP_EQUAL = 0;
const TARGET_CREATE = 1;
const TARGET_MOD = 2;

class EtcdBackend implements EtcdBackendApi {
  readonly name = ETCD_BACKEND;
  readonly url: string;
  readonly capabilities: Capabilities = {
    ...defaultCapabilities,
    bulkRegister: true,
    watch: true,
    digest: true,
    findByMetadata: true,
    persistent: true,
    distributed: true,
  };

  readonly client: Etcd3;
  private readonly root: string;
  private readonly indexFields: Set<string>;
  private readonly serializable: boolean;
  private readonly callTimeout: number;
  private readonly retryTimeout: number;
  private readonly leases: LeasePool | null;
  private readonly watchers = new Set<Watcher>();
  private closed = false;
  private probing: { at: number; p: Promise<Probe> } | null = null;
  /**
   * Exactly-once writes (see `attempt`): this instance's writer id, the revision of its fence key
   * (0: absent), the highest store revision any answer showed, and a token counter.
   */
  private readonly writer = randomBytes(8).toString('hex');
  private fence = 0;
  private seen = 0;
  private tokens = 0;
  private wrote = false;
  /**
   * Write attempts whose answer was lost (`ambiguous`) and how they were settled: found `applied`
   * in the history, certainly `notApplied`, or `unknown` (OutcomeUnknownError); `fenced`: attempts
   * refused because this instance's fence moved (made again). Shown by tests and benchmarks.
   */
  readonly writeStats = { ambiguous: 0, applied: 0, notApplied: 0, unknown: 0, fenced: 0 };
  /**
   * Plain bulk writes (restore, migrate copy) skip the nested marker txn for processes whose marker
   * they already wrote: the txn compares `g/<node>` instead, which a sweep bumps in the txn that
   * deletes markers. One marker per process instead of one nested txn per entry.
   */
  private readonly markerCache = new Map<string, MarkerGeneration>();

  constructor(
    readonly endpoints: string[],
    prefix: string,
    readonly opts: EtcdOptions,
    private readonly ctx: BackendContext,
  ) {
    this.url = `etcd://${endpoints.join(',')}${prefix}`;
    this.root = prefix;
    this.indexFields = new Set(opts.indexFields ?? DEFAULT_INDEX_FIELDS);
    this.serializable = opts.consistency === 'serializable';
    this.callTimeout = opts.callTimeout ?? 2000;
    this.retryTimeout = opts.retryTimeout ?? 6000;
    const callTimeout = this.callTimeout;
    this.client = new Etcd3({
      hosts: endpoints.map((h) => `http://${h}`),
      dialTimeout: callTimeout,
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + callTimeout }),
      faultHandling: {
        // Retries are ours (see `rpc`): one attempt per call here, a quick per-member breaker.
        global: { execute: (fn: () => Promise<unknown>) => fn() } as never,
        host: () => new HostBreaker() as never,
        // Watch reconnects back off 100 ms → 2 s (the default grows to 30 s: a member back after a
        // minute would leave watches, and caches on them, deaf for up to 30 s more).
        watchBackoff: new CappedBackoff(50, 2000),
      },
    });
    this.leases =
      opts.lease === 'session'
        ? new LeasePool(this.client, opts.leaseTtl ?? 10, opts.keysPerLease ?? DEFAULT_KEYS_PER_LEASE)
        : null;
  }

  // --- the contract ------------------------------------------------------------------------------

  async register(entry: Registration, opts: RegisterOptions): Promise<RegisterOutcome> {
    const key = this.rkey(entry.namespace, entry.key);
    const value = JSON.stringify(entry);
    const aux = this.auxKeys(entry);
    const what = `register "${entry.key}" in namespace "${entry.namespace}"`;
    return this.rpc('register', async () => {
      for (;;) {
        const lease = await this.leaseFor(1 + aux.length + 1);
        const created = await this.attempt(
          what,
          entry.key,
          {
            compare: [{ key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
            success: [put(key, value, lease), ...aux.map(([k, v]) => put(k, v, lease)), this.markerOp(entry, lease)],
            failure: [{ request_range: { key } }],
          },
          (): RegisterOutcome => ({ ok: true, entry }),
        ).catch((err) => this.leaseLost(err, lease));
        if (!created) continue; // our lease expired (a partition longer than the TTL): take a fresh one
        if (created.succeeded) {
          this.settleMarkers(lease, created);
          return { ok: true, entry };
        }
        this.leases?.release(lease, 1 + aux.length + 1);
        // The holder as of this txn (read inside it: linearizable, never a cached copy).
        const kv = created.responses[0]?.response_range.kvs[0];
        if (!kv) continue; // deleted in between: try to create again
        const holder = parseEntry(kv);
        if (!opts.replaceIf(holder)) return { ok: false, holder };
        const lease2 = await this.leaseFor(1 + aux.length + 1);
        const replaced = await this.attempt(
          what,
          entry.key,
          {
            compare: [modIs(key, kv.mod_revision)],
            success: [
              ...this.staleAux(holder, aux),
              put(key, value, lease2),
              ...aux.map(([k, v]) => put(k, v, lease2)),
              this.markerOp(entry, lease2),
            ],
          },
          (): RegisterOutcome => ({ ok: true, entry, replaced: holder }),
        ).catch((err) => this.leaseLost(err, lease2));
        if (replaced?.succeeded) {
          this.settleMarkers(lease2, replaced);
          this.leases?.forget(kv.lease, 1 + this.auxKeys(holder).length);
          return { ok: true, entry, replaced: holder };
        }
        this.leases?.release(lease2, 1 + aux.length + 1);
      }
    });
  }

  async lookup(namespace: string, key: string): Promise<Registration | undefined> {
    const kv = await this.get(this.rkey(namespace, key));
    return kv ? parseEntry(kv) : undefined;
  }

  /** The entry with the store revision it was read at (the watched cache needs both). */
  async lookupAt(namespace: string, key: string): Promise<{ entry: Registration | undefined; revision: number }> {
    const res = await this.rpc('lookup', () =>
      this.client.kv.range({ key: this.rkey(namespace, key), serializable: this.serializable }),
    );
    this.saw(res.header.revision);
    const kv = res.kvs[0];
    return { entry: kv ? parseEntry(kv) : undefined, revision: Number(res.header.revision) };
  }

  /**
   * Unconditional (`cond` undefined) or conditional: decided from a linearizable read (even with
   * `consistency: serializable`) and committed by a txn conditioned on the modRevision read; when
   * the entry changed in between, the txn's failure branch returns the new one and the decision is
   * made again on it.
   */
  async unregister(namespace: string, key: string, cond?: UnregisterCondition): Promise<boolean> {
    const k = this.rkey(namespace, key);
    const what = `unregister "${key}" in namespace "${namespace}"`;
    return this.rpc('unregister', async () => {
      let kv = await this.freshGet(k);
      for (;;) {
        if (!kv) return false;
        const e = parseEntry(kv);
        if (!matchesCond(e, cond)) return false;
        const r = await this.deleteIfUnchanged(kv, e, what);
        if (r === true) return true;
        kv = r.current;
      }
    });
  }

  async list(namespace: string, opts: ListOptions): Promise<Page> {
    const limit = Math.max(1, opts.limit ?? 1000);
    const indexed = opts.where?.find(([f, v]) => this.indexFields.has(f) && Buffer.byteLength(v) <= MAX_INDEX_VALUE);
    if (indexed) return this.listByIndex(namespace, opts, limit, indexed);
    const base = this.nsPrefix(namespace);
    const items: Registration[] = [];
    let start = opts.after === undefined ? base : Buffer.concat([base, Buffer.from(opts.after), ZERO]);
    const end = prefixEnd(base);
    for (;;) {
      const want = opts.where ? Math.max(limit * 2, 256) : limit - items.length;
      const res = await this.rpc('list', () =>
        this.client.kv.range({ key: start, range_end: end, limit: want, serializable: this.serializable }),
      );
      for (const [i, kv] of res.kvs.entries()) {
        const e = parseEntry(kv);
        if (!matchesWhere(e.meta, opts.where)) continue;
        items.push(e);
        if (items.length === limit) {
          const more = i < res.kvs.length - 1 || res.more;
          return more ? { items, next: e.key } : { items };
        }
      }
      const lastKv = res.kvs.at(-1);
      if (!res.more || !lastKv) return { items };
      start = Buffer.concat([lastKv.key, ZERO]);
    }
  }

  async updateMetadata(
    namespace: string,
    key: string,
    meta: Meta,
    opts: UpdateOptions,
  ): Promise<Registration | undefined> {
    const k = this.rkey(namespace, key);
    const what = `meta set "${key}" in namespace "${namespace}"`;
    return this.rpc('updateMetadata', async () => {
      // A compare-and-put: decided on a linearizable read, committed only if the entry is unchanged.
      let kv = await this.freshGet(k);
      for (;;) {
        if (!kv) return undefined;
        const old = parseEntry(kv);
        const next: Registration = {
          ...old,
          meta: opts.merge ? (mergePatch(old.meta, meta) as Meta) : meta,
          updatedAt: Date.now(),
        };
        opts.validate?.(next.meta);
        const aux = this.auxKeys(next);
        const lease = kv.lease; // keep the holder's lease: the entry still dies with its owner
        try {
          const r = await this.attempt(
            what,
            key,
            {
              compare: [modIs(k, kv.mod_revision)],
              success: [
                ...this.staleAux(old, aux),
                put(k, JSON.stringify(next), lease),
                ...aux.map(([ak, v]) => put(ak, v, lease)),
                this.markerOp(next, lease),
              ],
              failure: [{ request_range: { key: k } }],
            },
            () => next,
          );
          if (r.succeeded) return next;
          kv = r.responses[0]?.response_range.kvs[0];
        } catch (err) {
          if (!isLeaseGone(err)) throw err;
          kv = await this.freshGet(k); // the owner's lease expired meanwhile: the key is gone
        }
      }
    });
  }

  async count(namespace?: string): Promise<number> {
    const base = namespace === undefined ? this.bytes('/r/') : this.nsPrefix(namespace);
    const res = await this.rpc('count', () =>
      this.client.kv.range({
        key: base,
        range_end: prefixEnd(base),
        count_only: true,
        serializable: this.serializable,
      }),
    );
    return Number(res.count);
  }

  async namespaces(): Promise<string[]> {
    const base = this.bytes('/r/');
    const out: string[] = [];
    let start = base;
    for (;;) {
      const res = await this.rpc('namespaces', () =>
        this.client.kv.range({
          key: start,
          range_end: prefixEnd(base),
          limit: 1,
          keys_only: true,
          serializable: this.serializable,
        }),
      );
      const kv = res.kvs[0];
      if (!kv) return out;
      const rest = kv.key.subarray(base.length).toString();
      const ns = rest.slice(0, rest.indexOf('/'));
      out.push(ns);
      start = prefixEnd(this.nsPrefix(ns));
    }
  }

  async healthCheck(): Promise<HealthReport> {
    this.check();
    const probe = await this.probe(true);
    const base = {
      members: probe.members,
      leader: probe.leader,
      leaderEndpoint: probe.leaderEndpoint,
      raftTerm: probe.raftTerm,
      raftIndex: probe.raftIndex,
      revision: probe.revision,
      dbSize: probe.dbSize,
      endpoints: this.endpoints,
      prefix: this.root,
      leaseMode: this.opts.lease,
      sessionLeases: this.leases?.count() ?? 0,
    };
    if (probe.quorumLost || probe.reachable === 0) {
      return {
        status: 'unhealthy',
        unreachable: true,
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        reasons: [quorumMessage(probe, this.endpoints)],
        ...base,
      };
    }
    try {
      const [registrations, procs, leases, alarms, last, restore] = await Promise.all([
        this.count(),
        this.processes(this.ctx.nodeName),
        this.rpc('health', () => this.client.leaseClient.leaseLeases()),
        this.rpc('health', () => this.client.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' })),
        this.get(this.bytes(`/c/${encodeURIComponent(this.ctx.nodeName)}`)),
        journalSummary(this.journalHost()),
      ]);
      const deadProcs = procs.filter(
        (p) => !this.ctx.isAlive({ pid: p.pid, pidStart: p.pidStart, node: this.ctx.nodeName } as Registration),
      );
      const dead = deadProcs.length ? (await this.entriesOf(this.ctx.nodeName, deadProcs)).length : 0;
      const alive = Math.max(0, registrations - dead);
      const verdict = statusFromDeadShare(alive, dead);
      const alarmList = (alarms.alarms ?? []).map((a) => `${a.alarm} on member ${a.memberID}`);
      const reasons = [...verdict.reasons];
      let status = verdict.status;
      if (alarmList.length) {
        status = 'unhealthy';
        reasons.push(
          `etcd alarms raised: ${alarmList.join(', ')} (NOSPACE: compact, defragment, then \`etcdctl alarm disarm\`)`,
        );
      }
      if (restore.interrupted) {
        if (status === 'healthy') status = 'degraded';
        reasons.push(restore.line ?? 'a restore was interrupted');
      }
      const down = probe.members.filter((m) => !m.reachable);
      if (down.length && status === 'healthy') {
        status = 'degraded';
        reasons.push(`etcd members unreachable: ${down.map((m) => m.endpoint).join(', ')} (quorum holds)`);
      }
      return {
        status,
        reasons,
        registrations,
        alive,
        dead,
        memoryBytes: probe.dbSize,
        lastCleanup: last ? (JSON.parse(last.value.toString()) as { at: number }).at : null,
        leases: leases.leases.length,
        alarms: alarmList,
        ...(restore.line ? { restore: restore.line } : {}),
        ...base,
      };
    } catch (err) {
      const e = asRegistryError(err);
      return {
        status: 'unhealthy',
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        reasons: [e.message],
        ...base,
      };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers) await w.cancel().catch(() => undefined);
    this.watchers.clear();
    await this.leases?.revokeAll();
    if (this.wrote) {
      // This writer's fence and token keys (a few bytes; a killed process leaves them behind).
      const base = this.fenceKey();
      await this.client.kv
        .deleteRange({ key: base, range_end: prefixEnd(base) }, { deadline: Date.now() + 1000 })
        .catch(() => undefined);
    }
    this.client.close();
  }

  async bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): Promise<BulkResult[]> {
    if (opts.atomic) return this.bulkAtomic(entries, opts);
    const results: BulkResult[] = new Array(entries.length);
    // Batches of create-if-absent txns, one txn per batch: `txn(all absent)` succeeds for the
    // common case; a batch with a held key falls back to per-entry registers. Each txn carries all
    // keys of its entries (no partial entry); txns of distinct keys are independent, so they run
    // BULK_CONCURRENCY at a time (etcd batches concurrent proposals into one raft round and fsync).
    // Plain (lease-less) bulk writes skip the marker of a process this instance already wrote in the
    // node's current sweep generation; the txn then also compares that generation (see markerCache).
    const gens = this.leases
      ? null
      : new Map(
          await Promise.all(
            [...new Set(entries.map((e) => e.node))].map(async (n) => [n, await this.markerGeneration(n)] as const),
          ),
        );
    const items = entries.map((e, i) => {
      const marker = markerId(e);
      const gen = gens?.get(e.node);
      return {
        e,
        i,
        k: this.rkey(e.namespace, e.key),
        v: JSON.stringify(e),
        aux: this.auxKeys(e),
        marker,
        gen: gen?.known.has(marker) ? gen : undefined,
      };
    });
    const todo = batches(items);
    const distinct = new Set(entries.map((e) => `${e.namespace}\u0000${e.key}`)).size === entries.length;
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      for (let batch = todo[next++]; batch && !failed; batch = todo[next++]) {
        const items = batch; // (a const the closures below can rely on)
        const ok = await this.rpc('bulkRegister', async () => {
          const markers = this.markerOps(items.filter((b) => !b.gen).map((b) => b.e));
          const relied = new Map(items.flatMap((b) => (b.gen ? [[b.e.node, b.gen] as const] : [])));
          const n = items.reduce((s, b) => s + 1 + b.aux.length, 0) + markers.length;
          const lease = await this.leaseFor(n);
          const first = batch[0]?.e;
          const r = await this.attempt(
            `bulk register of ${items.length} entries${first ? ` from "${first.key}" in namespace "${first.namespace}"` : ''}`,
            first?.key ?? '',
            {
              compare: [
                ...items.map((b) => ({ key: b.k, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 })),
                ...[...relied].map(([node, g]) => modIs(this.generationKey(node), g.revision)),
              ],
              success: [
                ...items.flatMap((b) => [put(b.k, b.v, lease), ...b.aux.map(([k, v]) => put(k, v, lease))]),
                ...markers.map((m) => m(lease)),
              ],
            },
            () => true,
          ).catch((err) => this.leaseLost(err, lease));
          if (!r?.succeeded) {
            this.leases?.release(lease, n);
            if (r && relied.size) await this.checkGenerations(relied);
          } else {
            this.settleMarkers(lease, r);
            if (gens) for (const b of items) gens.get(b.e.node)?.known.add(b.marker);
          }
          return !!r?.succeeded; // a lost lease: per-entry registers below take a fresh one
        }).catch((err) => {
          failed = true; // the other workers stop taking batches
          throw err;
        });
        for (const b of items) {
          if (ok) results[b.i] = { ok: true, entry: b.e };
          else {
            try {
              results[b.i] = await this.register(b.e, opts);
            } catch (err) {
              results[b.i] = { ok: false, error: asRegistryError(err) };
            }
          }
        }
      }
    };
    // A key given twice keeps input order (the later one meets the earlier as holder): one at a time.
    const workers = distinct ? Math.min(BULK_CONCURRENCY, todo.length) : 1;
    const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
    const error = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (error) throw error.reason;
    return results;
  }

  /** All or nothing: read every key, decide, then one txn conditioned on every key's revision. */
  private async bulkAtomic(entries: Registration[], opts: RegisterOptions): Promise<BulkResult[]> {
    // One txn may hold at most --max-txn-ops (128) operations: puts plus deletes of stale index keys.
    const markers = this.markerOps(entries);
    const ops = entries.reduce((s, e) => s + 1 + 2 * this.auxKeys(e).length, 0) + markers.length;
    if (ops > MAX_TXN_OPS || new Set(entries.map((e) => `${e.namespace}\u0000${e.key}`)).size !== entries.length) {
      throw new InvalidInputError(
        `an atomic bulk register on etcd is one transaction of at most ${MAX_TXN_OPS} operations (about ${Math.floor(MAX_TXN_OPS / 4)} distinct keys): split the batch or drop --atomic`,
      );
    }
    return this.rpc('bulkRegister', async () => {
      for (;;) {
        const keys = entries.map((e) => this.rkey(e.namespace, e.key));
        const read = await this.client.kv.txn({ success: keys.map((key) => ({ request_range: { key } })) });
        this.saw(read.header.revision);
        const current = read.responses.map((r) => r.response_range.kvs[0]);
        const results: BulkResult[] = entries.map((e, i) => {
          const kv = current[i];
          if (!kv) return { ok: true, entry: e };
          const holder = parseEntry(kv);
          return opts.replaceIf(holder) ? { ok: true, entry: e, replaced: holder } : { ok: false, holder };
        });
        if (results.some((r) => !r.ok)) {
          return results.map((r) =>
            r.ok
              ? {
                  ok: false,
                  error: new RegistryError('CONFLICT', 'not written: another entry of the atomic batch failed'),
                }
              : r,
          );
        }
        const n = entries.reduce((s, e) => s + 1 + this.auxKeys(e).length, 0) + markers.length;
        const lease = await this.leaseFor(n);
        const compare: ICompare[] = keys.map((key, i) => {
          const kv = current[i];
          return kv
            ? modIs(key, kv.mod_revision)
            : { key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 };
        });
        const success: IRequestOp[] = entries.flatMap((e, i) => {
          const aux = this.auxKeys(e);
          const kv = current[i];
          const stale = kv ? this.staleAux(parseEntry(kv), aux) : [];
          return [
            ...stale,
            put(this.rkey(e.namespace, e.key), JSON.stringify(e), lease),
            ...aux.map(([k, v]) => put(k, v, lease)),
          ];
        });
        success.push(...markers.map((m) => m(lease)));
        const first = entries[0];
        const r = await this.attempt(
          `atomic bulk register of ${entries.length} entries${first ? ` from "${first.key}" in namespace "${first.namespace}"` : ''}`,
          first?.key ?? '',
          { compare, success },
          () => results,
        );
        if (r.succeeded) {
          this.settleMarkers(lease, r);
          return results;
        }
        this.leases?.release(lease, n);
      }
    });
  }

  /** Restore all or nothing through a journal (src/backends/etcd-restore.ts, docs/restore.md). */
  restoreAll(plan: RestorePlan): Promise<RestoreApplied> {
    return restoreWithJournal(this.journalHost(), plan);
  }

  resumeRestore(): Promise<RestoreApplied['recovered']> {
    return resumeJournal(this.journalHost());
  }

  private journalHost(): JournalHost {
    return {
      client: this.client,
      root: this.root,
      run: (what, fn) => this.rpc(what, fn),
      bulkRegister: (entries, opts) => this.bulkRegister(entries, opts),
      clearNamespace: (ns) => this.clearNamespace(ns),
      namespaces: () => this.namespaces(),
    };
  }

  async clearNamespace(namespace: string): Promise<number> {
    // Deleted in pages (not one huge range delete: etcd 3.4 reads stay slow after a large delete),
    // each page as txns of whole entries (registration + index keys) conditioned on the entry's
    // modRevision, BULK_CONCURRENCY at a time; a txn whose entries changed meanwhile falls back to
    // per-entry compare-and-delete.
    const base = this.nsPrefix(namespace);
    let removed = 0;
    for (;;) {
      const page = await this.rpc('clearNamespace', () =>
        this.client.kv.range({ key: base, range_end: prefixEnd(base), limit: 2000 }),
      );
      if (page.kvs.length === 0) return removed;
      const groups: Array<Array<{ kv: IKeyValue; e: Registration; ops: IRequestOp[] }>> = [];
      let cur: (typeof groups)[number] = [];
      let n = 0;
      for (const kv of page.kvs) {
        const e = parseEntry(kv);
        const ops = this.deleteOps(e);
        if (cur.length && n + ops.length > MAX_TXN_OPS) {
          groups.push(cur);
          cur = [];
          n = 0;
        }
        cur.push({ kv, e, ops });
        n += ops.length;
      }
      if (cur.length) groups.push(cur);
      let next = 0;
      const worker = async () => {
        for (let g = groups[next++]; g; g = groups[next++]) {
          const group = g;
          const r = await this.rpc('clearNamespace', () =>
            this.client.kv.txn({
              compare: group.map((x) => modIs(x.kv.key, x.kv.mod_revision)),
              success: group.flatMap((x) => x.ops),
            }),
          );
          if (r.succeeded) {
            removed += group.length;
            for (const x of group) this.leases?.forget(x.kv.lease, 1 + this.auxKeys(x.e).length);
            continue;
          }
          for (const x of group)
            if (
              await this.unregister(namespace, x.e.key, {
                pid: x.e.pid,
                registeredAt: x.e.registeredAt,
                node: x.e.node,
              })
            )
              removed++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, groups.length) }, worker));
    }
  }

  /** The processes of `node` that have (or had, since their last sweep) registrations: its markers. */
  async processes(node: string): Promise<ProcessSummary[]> {
    const base = this.bytes(`/p/${encodeURIComponent(node)}/`);
    const out: ProcessSummary[] = [];
    let last = '';
    for await (const kv of this.scan('processes', base)) {
      const [pid, start] = kv.key.subarray(base.length).toString().split('/');
      if (`${pid}/${start}` === last) continue; // its `s` and `n` markers are adjacent
      last = `${pid}/${start}`;
      out.push({ pid: Number(pid), pidStart: start === '-' || start === undefined ? null : Number(start) });
    }
    return out;
  }

  /**
   * Remove every registration of the given (dead) processes of `node`: their markers first, then
   * one read of the registrations and a compare-and-delete of each of theirs (see the header for
   * why this order loses no registration to a racing write).
   */
  async removeProcesses(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>): Promise<number> {
    if (procs.length === 0) return 0;
    for (let i = 0; i < procs.length; i += MAX_TXN_OPS - 1) {
      const ops: IRequestOp[] = procs.slice(i, i + MAX_TXN_OPS - 1).map((p) => {
        const base = this.markerBase({ node, ...p });
        return { request_delete_range: { key: base, range_end: prefixEnd(base), prev_kv: true } };
      });
      // A new sweep generation: bulk writers that skipped these markers as known must look again.
      ops.push(put(this.generationKey(node), JSON.stringify({ at: Date.now() })));
      const r = await this.rpc('removeProcess', () => this.client.kv.txn({ success: ops }));
      for (const res of r.responses)
        for (const kv of res.response_delete_range?.prev_kvs ?? [])
          if (kv.lease !== '0') this.leases?.forget(kv.lease, 1);
    }
    const doomed = await this.entriesOf(node, procs);
    let removed = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let kv = doomed[next++]; kv; kv = doomed[next++]) {
        // Not deleted: rewritten meanwhile, and the write recreated the marker: the next sweep judges it.
        const e = parseEntry(kv);
        const what = `sweep of "${e.key}" in namespace "${e.namespace}"`;
        if ((await this.rpc('removeProcess', () => this.deleteIfUnchanged(kv, e, what))) === true) removed++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, doomed.length) }, worker));
    return removed;
  }

  /**
   * The stored registrations of these processes of `node`, read from one snapshot of every
   * namespace — a linearizable one even with `consistency: serializable`: a sweep's snapshot must
   * follow its marker delete, or a registration written in between could be missed.
   */
  private async entriesOf(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>): Promise<IKeyValue[]> {
    const wanted = new Set(procs.map((p) => `${p.pid}/${p.pidStart ?? '-'}`));
    const out: IKeyValue[] = [];
    for await (const kv of this.scan('removeProcess', this.bytes('/r/'), true)) {
      const e = parseEntry(kv);
      if (e.node === node && wanted.has(`${e.pid}/${e.pidStart ?? '-'}`)) out.push(kv);
    }
    return out;
  }

  async markCleanup(at: number): Promise<void> {
    const key = this.bytes(`/c/${encodeURIComponent(this.ctx.nodeName)}`);
    await this.rpc('markCleanup', () => this.client.kv.put({ key, value: Buffer.from(JSON.stringify({ at })) }));
  }

  async watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): Promise<() => void> {
    this.check();
    const base = opts.namespace === undefined ? this.bytes('/r/') : this.nsPrefix(opts.namespace);
    const rootLen = this.bytes('/r/').length;
    let b = this.client.watch().prefix(base.toString());
    if (opts.sinceRevision !== undefined) b = b.startRevision(String(opts.sinceRevision + 1));
    const watcher = await this.rpc('watch', () => withDeadline(b.create(), this.retryTimeout, 'watch'));
    this.watchers.add(watcher);
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        const rest = ev.kv.key.subarray(rootLen).toString();
        const slash = rest.indexOf('/');
        const e: ChangeEvent = {
          revision: Number(ev.kv.mod_revision),
          type: ev.type === 'Delete' ? 'delete' : 'put',
          namespace: rest.slice(0, slash),
          key: rest.slice(slash + 1),
        };
        if (e.type === 'put') e.entry = parseEntry(ev.kv);
        onEvent(e);
      }
    });
    let last = opts.sinceRevision ?? 0;
    watcher.on('data', (res) => {
      for (const ev of res.events) last = Math.max(last, Number(ev.kv.mod_revision));
    });
    const failed = async (err: Error): Promise<void> => {
      this.watchers.delete(watcher);
      // etcd cancels a watch whose start revision is compacted; the client drops the compact
      // revision, so ask: can the revision after the last one seen still be read?
      const compacted = /compact/i.test(err.message) || (await this.isCompacted(last + 1));
      onError?.(
        compacted
          ? new CompactedError(
              `the etcd watch from revision ${last} was compacted: list again and watch from the current revision`,
              { cause: err },
            )
          : new UnreachableError(`the etcd watch failed: ${err.message}`, { cause: err }),
      );
    };
    watcher.on('error', (err: Error) => void failed(err));
    return () => {
      this.watchers.delete(watcher);
      void watcher.cancel().catch(() => undefined);
    };
  }

  async digest(namespace: string, buckets: number): Promise<BucketDigests> {
    // Computed from one consistent snapshot (all pages read at the first page's revision).
    const d = new BucketDigester(buckets);
    for await (const kv of this.scan('digest', this.nsPrefix(namespace))) d.add(parseEntry(kv));
    return d.result();
  }

  /** Every key under `base`, 1000 per request, all pages read at the first page's revision (one snapshot). */
  private async *scan(what: string, base: Buffer, linearizable = false): AsyncGenerator<IKeyValue> {
    let start = base;
    let revision: string | undefined;
    const serializable = this.serializable && !linearizable;
    for (;;) {
      const res = await this.rpc(what, () =>
        this.client.kv.range({ key: start, range_end: prefixEnd(base), limit: 1000, revision, serializable }),
      );
      revision ??= res.header.revision;
      yield* res.kvs;
      const lastKv = res.kvs.at(-1);
      if (!res.more || !lastKv) return;
      start = Buffer.concat([lastKv.key, ZERO]);
    }
  }

  private async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: this.bytes('/r/'), count_only: true, revision, serializable: true });
      return false;
    } catch (err) {
      return /compacted/i.test((err as Error).message);
    }
  }

  /** The store's current revision (list-then-watch: list, then watch from this). */
  async currentRevision(): Promise<number> {
    const res = await this.rpc('revision', () =>
      this.client.kv.range({ key: this.bytes('/r/'), count_only: true, serializable: this.serializable }),
    );
    return Number(res.header.revision);
  }

  // --- helpers -----------------------------------------------------------------------------------

  private check(): void {
    if (this.closed) throw new ClosedError('the etcd backend');
  }

  private bytes(path: string): Buffer {
    return Buffer.from(`${this.root}${path}`);
  }

  private nsPrefix(ns: string): Buffer {
    return this.bytes(`/r/${ns}/`);
  }

  private rkey(ns: string, key: string): Buffer {
    return this.bytes(`/r/${ns}/${key}`);
  }

  /** Where the markers of a process live: `p/<node>/<pid>/<pidStart|->/`. */
  private markerBase(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>): Buffer {
    return this.bytes(`/p/${encodeURIComponent(e.node)}/${e.pid}/${e.pidStart ?? '-'}/`);
  }

  /** The marker a write makes: `s` on its session lease, `n` for a plain (lease-less) write. */
  private markerKey(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>, leased: boolean): Buffer {
    return Buffer.concat([this.markerBase(e), Buffer.from(leased ? 's' : 'n')]);
  }

  /** `if createRevision(marker) == 0 then put marker` as a nested txn (an existing marker is left untouched). */
  private markerOp(e: Registration, lease: string | undefined): IRequestOp {
    const leased = lease !== undefined && lease !== '0';
    const key = this.markerKey(e, leased);
    return {
      request_txn: {
        compare: [{ key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
        success: [put(key, JSON.stringify({ pid: e.pid, pidStart: e.pidStart ?? null }), leased ? lease : undefined)],
        failure: [],
      },
    };
  }

  /** The marker ops of several entries, one per distinct process (a txn may not put a key twice). */
  private markerOps(entries: Registration[]): Array<(lease: string | undefined) => IRequestOp> {
    const seen = new Map<string, Registration>();
    for (const e of entries) {
      const id = markerId(e);
      if (!seen.has(id)) seen.set(id, e);
    }
    return [...seen.values()].map((e) => (lease) => this.markerOp(e, lease));
  }

  private generationKey(node: string): Buffer {
    return this.bytes(`/g/${encodeURIComponent(node)}`);
  }

  /** The processes of `node` whose plain marker this instance wrote, valid while `g/<node>` stays at `revision`. */
  private async markerGeneration(node: string): Promise<MarkerGeneration> {
    let g = this.markerCache.get(node);
    if (!g) {
      const kv = await this.get(this.generationKey(node));
      g = this.markerCache.get(node) ?? { revision: kv?.mod_revision ?? '0', known: new Set() };
      this.markerCache.set(node, g);
    }
    if (g.known.size > MARKER_CACHE_MAX) g.known.clear();
    return g;
  }

  /** A bulk txn failed: start afresh for every node whose sweep generation moved. */
  private async checkGenerations(relied: Map<string, MarkerGeneration>): Promise<void> {
    for (const [node, g] of relied) {
      const kv = await this.get(this.generationKey(node));
      if ((kv?.mod_revision ?? '0') !== g.revision && this.markerCache.get(node) === g) this.markerCache.delete(node);
    }
  }

  /** A committed write counted one key per marker on its lease: give back those of markers that existed. */
  private settleMarkers(
    lease: string | undefined,
    r: { responses: Array<{ response_txn?: { succeeded: boolean } }> },
  ): void {
    if (!this.leases || !lease) return;
    const existed = r.responses.filter((x) => x.response_txn && !x.response_txn.succeeded).length;
    if (existed) this.leases.release(lease, existed);
  }

  /** The index keys of an entry (or its "not indexed" key), with their values: they share its lease. */
  private auxKeys(e: Registration): Array<[Buffer, string]> {
    const out: Array<[Buffer, string]> = [];
    const idx: Array<[Buffer, string]> = [];
    let unindexable = false;
    const value = JSON.stringify({ pid: e.pid });
    for (const field of this.indexFields) {
      const v = e.meta[field];
      if (v === undefined) continue;
      const texts = new Set(
        (Array.isArray(v) ? v : [v]).map((x) => scalarText(x)).filter((t): t is string => t !== undefined),
      );
      for (const t of texts) {
        if (Buffer.byteLength(t) > MAX_INDEX_VALUE) continue; // queries for such values scan
        idx.push([
          this.bytes(`/i/${e.namespace}/${encodeURIComponent(field)}/${encodeURIComponent(t)}/${e.key}`),
          value,
        ]);
      }
    }
    if (idx.length > MAX_INDEX_KEYS) unindexable = true;
    if (unindexable) out.push([this.bytes(`/u/${e.namespace}/${e.key}`), value]);
    else out.push(...idx);
    return out;
  }

  /** Deletes for the aux keys of `old` that `next` does not rewrite (a txn may not touch a key twice). */
  private staleAux(old: Registration, next: Array<[Buffer, string]>): IRequestOp[] {
    const keep = new Set(next.map(([k]) => k.toString('latin1')));
    return this.auxKeys(old)
      .filter(([k]) => !keep.has(k.toString('latin1')))
      .map(([k]) => ({ request_delete_range: { key: k } }));
  }

  /**
   * Delete entry `e` (read as `kv`) and its index keys if it has not changed since: true, or the
   * entry as it is now (read in the same txn).
   */
  private async deleteIfUnchanged(
    kv: IKeyValue,
    e: Registration,
    what: string,
  ): Promise<true | { current: IKeyValue | undefined }> {
    const r = await this.attempt(
      what,
      e.key,
      {
        compare: [modIs(kv.key, kv.mod_revision)],
        success: this.deleteOps(e),
        failure: [{ request_range: { key: kv.key } }],
      },
      () => true as const,
    );
    if (!r.succeeded) return { current: r.responses[0]?.response_range.kvs[0] };
    this.leases?.forget(kv.lease, 1 + this.auxKeys(e).length);
    return true;
  }

  private deleteOps(e: Registration): IRequestOp[] {
    return [
      { request_delete_range: { key: this.rkey(e.namespace, e.key) } },
      ...this.auxKeys(e).map(([k]) => ({ request_delete_range: { key: k } })),
    ];
  }

  // --- exactly-once writes ------------------------------------------------------------------------
  //
  // A write whose answer is lost (a timeout, a member killed or the leader lost mid-call) may have
  // been applied, may never be, or may still be applied later (a request queued on a paused
  // member). Retrying it blindly answers from the retry, which can be wrong: a create-if-absent
  // that did commit is retried into `conflict` naming the caller itself (issue 13). So every write
  // txn of this instance (1) also compares the instance's *fence* key `w/<writer>` (absent, or the
  // revision this instance last moved it to) and (2) puts a per-attempt token into `w/<writer>/t`
  // in its success branch. After an ambiguous failure, `resolve` moves the fence (a put through the
  // quorum, at revision B): from then on no earlier attempt can apply, since its fence compare
  // fails. It then replays the history of `w/<writer>…` from a revision before the attempt up to B
  // (a watch from a past revision): the token is there exactly when the attempt was applied. The
  // call answers with that attempt's outcome, or decides again knowing the attempt had no effect.
  // Only when that history is gone (compacted) or the cluster stays unreachable is the answer
  // OutcomeUnknownError. Attempts of this instance that fail because the fence moved did not apply:
  // they are made again.

  private fenceKey(): Buffer {
    return this.bytes(`/w/${this.writer}`);
  }

  private tokenKey(): Buffer {
    return this.bytes(`/w/${this.writer}/t`);
  }

  private saw(revision: string | number | undefined): void {
    const r = Number(revision ?? 0);
    if (r > this.seen) this.seen = r;
  }

  /**
   * One attempt of a write txn, fenced and tokened (see above). Answers the txn's response (its
   * responses in the caller's order); throws `Applied` (the call's answer: `outcome()`) when an
   * ambiguous attempt turns out applied, `Redo` when it certainly was not (decide again), or
   * OutcomeUnknownError.
   */
  private async attempt<T>(what: string, key: string, req: ITxnRequest, outcome: () => T): Promise<ITxnResponse> {
    const fence = this.fence;
    const token = `${process.pid}.${++this.tokens}`;
    const since = this.seen; // every revision this attempt can commit at is above it
    const failure = req.failure ?? [];
    this.wrote = true;
    let r: ITxnResponse;
    try {
      r = await this.client.kv.txn({
        compare: [...(req.compare ?? []), this.fenceCompare(fence)],
        success: [...(req.success ?? []), put(this.tokenKey(), token)],
        failure: [...failure, { request_range: { key: this.fenceKey() } }],
      });
    } catch (err) {
      if (!isTransient(err) || isUnsent(err)) throw err;
      this.writeStats.ambiguous++;
      if (await this.resolve(what, key, token, since, err)) {
        this.writeStats.applied++;
        throw new Applied(outcome());
      }
      this.writeStats.notApplied++;
      throw new Redo();
    }
    this.saw(r.header.revision);
    if (r.succeeded) return r;
    const now = Number(r.responses[failure.length]?.response_range.kvs[0]?.mod_revision ?? 0);
    if (now !== fence) {
      if (now > this.fence) this.fence = now;
      this.writeStats.fenced++;
      throw new Redo(); // failed on the fence, not on the caller's compare: nothing was applied
    }
    return r;
  }

  private fenceCompare(fence: number): ICompare {
    return fence === 0
      ? { key: this.fenceKey(), target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }
      : modIs(this.fenceKey(), String(fence));
  }

  /** Was the attempt with `token` (sent after revision `since`) applied? See the section comment. */
  private async resolve(what: string, key: string, token: string, since: number, cause: unknown): Promise<boolean> {
    const budget = Math.max(this.retryTimeout, 3 * this.callTimeout);
    const deadline = Date.now() + budget;
    let delay = 50;
    let last: unknown = cause;
    while (!this.closed) {
      try {
        const p = await this.client.kv.put({ key: this.fenceKey(), value: Buffer.from(String(Date.now())) });
        const fenced = Number(p.header.revision);
        this.saw(fenced);
        if (fenced > this.fence) this.fence = fenced;
        return await withDeadline(this.replay(token, since, fenced), Math.max(1000, deadline - Date.now()), 'replay');
      } catch (err) {
        last = err;
        if (err instanceof RegistryError) throw this.unknown(what, key, err.message, err);
        const probe = await this.probe();
        if (probe.quorumLost) throw this.unknown(what, key, quorumMessage(probe, this.endpoints), err);
        if (Date.now() + delay > deadline) break;
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 400);
      }
    }
    const msg = last instanceof Error ? last.message : String(last);
    throw this.unknown(what, key, `etcd did not confirm it within ${budget} ms (${msg})`, last);
  }

  private unknown(what: string, key: string, why: string, cause: unknown): OutcomeUnknownError {
    this.writeStats.unknown++;
    return new OutcomeUnknownError(
      `${what}: outcome unknown: the request reached etcd but its answer was lost, and whether it was applied could not be established (${why}). It may have been applied (whole, or not at all): check with \`registry lookup ${key}\` once etcd answers`,
      { cause },
    );
  }

  /** Whether `token` was put into this writer's token key in revisions (since, upTo]. */
  private async replay(token: string, since: number, upTo: number): Promise<boolean> {
    const tokenKey = this.tokenKey();
    const watcher = await this.client
      .watch()
      .prefix(this.fenceKey().toString())
      .startRevision(String(since + 1))
      .create();
    try {
      return await new Promise<boolean>((resolve, reject) => {
        watcher.on('data', (res) => {
          for (const ev of res.events) {
            if (ev.type === 'Put' && ev.kv.key.equals(tokenKey) && ev.kv.value.toString() === token) resolve(true);
            if (Number(ev.kv.mod_revision) >= upTo) resolve(false);
          }
        });
        watcher.on('error', (err: Error) =>
          reject(
            /compact/i.test(err.message)
              ? new RegistryError('UNREACHABLE', `the history from revision ${since + 1} was compacted`, { cause: err })
              : err,
          ),
        );
      });
    } finally {
      void watcher.cancel().catch(() => undefined);
    }
  }

  /** A txn failed: when because our session lease is gone, drop it from the pool (undefined = retry). */
  private leaseLost(err: unknown, lease: string | undefined): undefined {
    if (lease && this.leases && isLeaseGone(err)) {
      this.leases.drop(lease);
      return undefined;
    }
    throw err;
  }

  private async leaseFor(keys: number): Promise<string | undefined> {
    return this.leases ? this.leases.acquire(keys) : undefined;
  }

  private async get(key: Buffer): Promise<IKeyValue | undefined> {
    return this.rpc('lookup', () => this.rawGet(key));
  }

  private async rawGet(key: Buffer): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key, serializable: this.serializable });
    this.saw(res.header.revision);
    return res.kvs[0];
  }

  /** A linearizable read whatever `consistency` says: what a conditional write decides from. */
  private async freshGet(key: Buffer): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key, serializable: false });
    this.saw(res.header.revision);
    return res.kvs[0];
  }

  private async listByIndex(
    namespace: string,
    opts: ListOptions,
    limit: number,
    [field, value]: [string, string],
  ): Promise<Page> {
    const ibase = this.bytes(`/i/${namespace}/${encodeURIComponent(field)}/${encodeURIComponent(value)}/`);
    const ubase = this.bytes(`/u/${namespace}/`);
    const items: Registration[] = [];
    let cursor = opts.after;
    for (;;) {
      const from = (b: Buffer) => (cursor === undefined ? b : Buffer.concat([b, Buffer.from(cursor), ZERO]));
      const page = await this.rpc('list', () =>
        this.client.kv.range({
          key: from(ibase),
          range_end: prefixEnd(ibase),
          limit: 100,
          keys_only: true,
          serializable: this.serializable,
        }),
      );
      const keys = page.kvs.map((kv) => kv.key.subarray(ibase.length).toString());
      const lastKey = keys.at(-1);
      const upper =
        page.more && lastKey !== undefined ? Buffer.concat([ubase, Buffer.from(lastKey), ZERO]) : prefixEnd(ubase);
      const un = await this.rpc('list', () =>
        this.client.kv.range({ key: from(ubase), range_end: upper, keys_only: true, serializable: this.serializable }),
      );
      const candidates = [...new Set([...keys, ...un.kvs.map((kv) => kv.key.subarray(ubase.length).toString())])].sort(
        (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)),
      );
      for (let i = 0; i < candidates.length; i += MAX_TXN_OPS) {
        const chunk = candidates.slice(i, i + MAX_TXN_OPS);
        const r = await this.rpc('list', () =>
          this.client.kv.txn({
            success: chunk.map((k) => ({
              request_range: { key: this.rkey(namespace, k), serializable: this.serializable },
            })),
          }),
        );
        for (let j = 0; j < chunk.length; j++) {
          const kv = r.responses[j]?.response_range.kvs[0];
          if (!kv) continue;
          const e = parseEntry(kv);
          if (!matchesWhere(e.meta, opts.where)) continue;
          items.push(e);
          if (items.length === limit) {
            const more = i + j < candidates.length - 1 || page.more;
            return more ? { items, next: e.key } : { items };
          }
        }
      }
      if (!page.more || keys.length === 0) return { items };
      cursor = keys[keys.length - 1];
    }
  }

  /**
   * Run an etcd call, retrying recoverable failures (leader elections, one member down) within
   * `retryTimeout`; lost quorum fails at once with UnreachableError naming it.
   */
  private async rpc<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.check();
    const deadline = Date.now() + this.retryTimeout;
    let delay = 20;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Applied) return err.value as T;
        if (err instanceof Redo) {
          // Certainly not applied: decide again (within the deadline).
          if (Date.now() < deadline) continue;
          throw new UnreachableError(`${what} failed: etcd kept refusing it for ${this.retryTimeout} ms`, {
            details: { outcome: 'not-applied' },
          });
        }
        if (err instanceof RegistryError) throw err;
        if (this.closed) throw new ClosedError('the etcd backend');
        if (!isTransient(err)) throw permanentError(err, what);
        const probe = await this.probe();
        if (probe.quorumLost || Date.now() + delay > deadline) {
          // A write that reached a leader which then lost quorum sits uncommitted in its log: etcd
          // commits it if that member leads again after recovery. Say so rather than claim "not written".
          const unknown = WRITES.has(what) && isAmbiguous(err);
          const outcome = unknown
            ? ' (this write reached the cluster before it failed: it takes effect only if the cluster recovers with it in its log — look the key up once etcd is back)'
            : '';
          throw new UnreachableError(
            probe.quorumLost
              ? `${what} failed: ${quorumMessage(probe, this.endpoints)}${outcome}`
              : `${what} failed: etcd at ${this.endpoints.join(',')} did not answer within ${this.retryTimeout} ms (${(err as Error).message}): check that the cluster is running${outcome}`,
            { cause: err, details: { outcome: unknown ? 'unknown' : 'not-applied', members: probe.members } },
          );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 400);
      }
    }
  }

  /** Ask every endpoint for its status (gRPC gateway, 700 ms each); shared for 250 ms. */
  private probe(fresh = false): Promise<Probe> {
    const now = Date.now();
    if (!fresh && this.probing && now - this.probing.at < 250) return this.probing.p;
    const p = probeCluster(this.endpoints);
    this.probing = { at: now, p };
    return p;
  }
}

// ---------------------------------------------------------------------------------------------
// Leases, probing, errors and small helpers.
// ---------------------------------------------------------------------------------------------

/**
 * The leases of one process: registrations go to a lease with fewer than `cap` attached keys, a
 * new lease is granted when all are full (etcd issue 15993: a put with a lease costs time linear
 * in the keys already on it). Counts are this process's own bookkeeping.
 */
class LeasePool {
  private readonly pool: Array<{ lease: Lease; id: string; keys: number }> = [];
  private granting: Promise<{ lease: Lease; id: string; keys: number }> | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly ttl: number,
    private readonly cap: number,
  ) {}

  async acquire(keys: number): Promise<string> {
    for (;;) {
      const slot = this.pool.find((s) => s.keys + keys <= this.cap || s.keys === 0);
      if (slot) {
        slot.keys += keys;
        return slot.id;
      }
      if (!this.granting) {
        this.granting = this.grant().finally(() => {
          this.granting = null;
        });
      }
      await this.granting;
    }
  }

  private async grant() {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    const id = await lease.grant().catch((err) => {
      lease.release();
      throw err;
    });
    const slot = { lease, id, keys: 0 };
    lease.on('lost', () => {
      const i = this.pool.indexOf(slot);
      if (i >= 0) this.pool.splice(i, 1);
    });
    this.pool.push(slot);
    return slot;
  }

  /** Keys counted by `acquire` that were not written. */
  release(id: string | undefined, keys: number): void {
    const s = this.pool.find((x) => x.id === id);
    if (s) s.keys = Math.max(0, s.keys - keys);
  }

  /** A lease etcd no longer knows (expired): never hand it out again. */
  drop(id: string): void {
    const i = this.pool.findIndex((x) => x.id === id);
    if (i >= 0) this.pool.splice(i, 1)[0]?.lease.release();
  }

  /** Keys on lease `id` (a kv's `lease` field) that were deleted or replaced. */
  forget(id: string, keys: number): void {
    this.release(id, keys);
  }

  count(): number {
    return this.pool.length;
  }

  async revokeAll(): Promise<void> {
    const all = this.pool.splice(0);
    await Promise.all(all.map((s) => s.lease.revoke({ deadline: Date.now() + 2000 }).catch(() => s.lease.release())));
  }
}

/**
 * Per-member circuit breaker handed to the etcd3 pool: after 3 consecutive transient failures a
 * member is skipped for 1 s (the pool then tries the next member), then tried again.
 */
class HostBreaker {
  private failures = 0;
  private openUntil = 0;
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    if (Date.now() < this.openUntil) {
      const e = new Error('etcd member skipped after repeated failures (circuit open)');
      e.name = 'BrokenCircuitError';
      throw e;
    }
    try {
      const r = await fn();
      this.failures = 0;
      return r;
    } catch (err) {
      if (isTransient(err) && ++this.failures >= 3) {
        this.openUntil = Date.now() + 1000;
        this.failures = 0;
      }
      throw err;
    }
  }
}

/** Exponential reconnect delay for watch streams, capped (etcd3's IBackoff shape). */
class CappedBackoff {
  constructor(
    readonly duration: number,
    private readonly max: number,
  ) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.max), this.max);
  }
}

interface MemberStatus {
  endpoint: string;
  reachable: boolean;
  id?: string;
  leader?: string;
  raftTerm?: number;
  raftIndex?: number;
  dbSize?: number;
  errors?: string[];
}

interface Probe {
  members: MemberStatus[];
  reachable: number;
  leader: string | null;
  /** The client endpoint of the leader, when a reachable member is it. */
  leaderEndpoint: string | null;
  raftTerm: number;
  raftIndex: number;
  revision: number;
  dbSize: number;
  quorumLost: boolean;
}

async function probeCluster(endpoints: string[]): Promise<Probe> {
  const members = await Promise.all(
    endpoints.map(async (endpoint): Promise<MemberStatus> => {
      try {
        const res = await fetch(`http://${endpoint}/v3/maintenance/status`, {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(700),
        });
        if (!res.ok) return { endpoint, reachable: false };
        const s = (await res.json()) as {
          header?: { member_id?: string; revision?: string };
          leader?: string;
          raftTerm?: string;
          raftIndex?: string;
          dbSize?: string;
          errors?: string[];
        };
        return {
          endpoint,
          reachable: true,
          id: s.header?.member_id,
          leader: s.leader && s.leader !== '0' ? s.leader : undefined,
          raftTerm: Number(s.raftTerm ?? 0),
          raftIndex: Number(s.raftIndex ?? 0),
          dbSize: Number(s.dbSize ?? 0),
          errors: s.errors ?? [],
          revision: Number(s.header?.revision ?? 0),
        } as MemberStatus;
      } catch {
        return { endpoint, reachable: false };
      }
    }),
  );
  const up = members.filter((m) => m.reachable);
  const majority = Math.floor(endpoints.length / 2) + 1;
  const withLeader = up.filter((m) => m.leader);
  const lead = withLeader[0];
  return {
    members,
    reachable: up.length,
    leader: lead?.leader ?? null,
    leaderEndpoint: up.find((m) => m.id && m.id === lead?.leader)?.endpoint ?? null,
    raftTerm: Math.max(0, ...up.map((m) => m.raftTerm ?? 0)),
    raftIndex: Math.max(0, ...up.map((m) => m.raftIndex ?? 0)),
    revision: Math.max(0, ...up.map((m) => (m as { revision?: number }).revision ?? 0)),
    dbSize: Math.max(0, ...up.map((m) => m.dbSize ?? 0)),
    // No leader with a majority up is an election in progress (retried), not a lost quorum.
    quorumLost: up.length < majority,
  };
}

function quorumMessage(p: Probe, endpoints: string[]): string {
  const majority = Math.floor(endpoints.length / 2) + 1;
  const down = p.members.filter((m) => !m.reachable).map((m) => m.endpoint);
  return `etcd has lost quorum: ${p.reachable} of ${endpoints.length} members reachable (a majority of ${majority} is needed${down.length ? `; down: ${down.join(', ')}` : ''}${p.leader ? '' : '; no leader'}): writes and linearizable reads are refused until enough members are back`;
}

const TRANSIENT_NAMES = new Set([
  'GRPCUnavailableError',
  'GRPCDeadlineExceededError',
  'GRPCInternalError',
  'GRPCCancelledError',
  'GRPCConnectFailedError',
  'BrokenCircuitError',
  'TaskCancelledError',
  'GRPCResourceExhastedError',
]);

function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (TRANSIENT_NAMES.has(err.name) || TRANSIENT_NAMES.has(err.constructor?.name)) return true;
  return /no leader|timed out|leader changed|unavailable|ECONNREFUSED|connect|too many requests|not capable|deadline|broken|circuit/i.test(
    err.message,
  );
}

/**
 * Blind writes retried by `rpc` (their failure may be ambiguous). The conditional writes (register,
 * unregister, meta set, bulk) never get there ambiguous: `attempt` settles their outcome.
 */
const WRITES = new Set(['removeProcess', 'markCleanup']);

/** The call certainly never reached a member that could apply it (safe to send again). */
function isUnsent(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'BrokenCircuitError' || err.name === 'GRPCConnectFailedError') return true;
  return /no leader|ECONNREFUSED|circuit|failed to connect|No connection established/i.test(err.message);
}

/** Thrown through `rpc`: an ambiguous attempt turned out applied; `value` is the call's answer. */
class Applied {
  constructor(readonly value: unknown) {}
}

/** Thrown through `rpc`: an attempt certainly not applied (its fence moved): decide again. */
class Redo {}

/** The request may have been proposed before it failed (a timeout, not a refusal). */
function isAmbiguous(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'BrokenCircuitError' || /no leader|ECONNREFUSED|connect|circuit/i.test(err.message)) return false;
  if (err.name === 'GRPCUnavailableError' && !/timed out|leader changed/i.test(err.message)) return false;
  return true;
}

function isLeaseGone(err: unknown): boolean {
  return err instanceof Error && /lease not found/i.test(err.message);
}

function permanentError(err: unknown, what: string): RegistryError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/permission denied|authentication|invalid auth|user name/i.test(msg))
    return new UnauthorizedError(`${what} refused by etcd: ${msg}: check the etcd user and its role`, { cause: err });
  if (/too large|too many operations|duplicate key/i.test(msg))
    return new InvalidInputError(`${what} refused by etcd: ${msg}`, { cause: err });
  if (err instanceof Error && err.name === 'ClientClosedError') return new ClosedError('the etcd backend');
  return asRegistryError(err);
}

/** `p`, or a transient timeout error after `ms` (the watch stream waits for a connection forever). */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: request timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const ZERO = Buffer.from([0]);

/** The first key after every key starting with `p`. */
function prefixEnd(p: Buffer): Buffer {
  const out = Buffer.from(p);
  for (let i = out.length - 1; i >= 0; i--) {
    const byte = out[i] ?? 0xff;
    if (byte < 0xff) {
      out[i] = byte + 1;
      return out.subarray(0, i + 1);
    }
  }
  return ZERO;
}

function put(key: Buffer, value: string, lease?: string): IRequestOp {
  return { request_put: { key, value: Buffer.from(value), lease: lease ?? 0 } };
}

function modIs(key: Buffer, rev: string): ICompare {
  return { key, target: TARGET_MOD, result: CMP_EQUAL, mod_revision: rev };
}

/** Which process (of which node) an entry belongs to, as a map key. */
function markerId(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>): string {
  return `${e.node}\u0000${e.pid}\u0000${e.pidStart ?? '-'}`;
}

function parseEntry(kv: IKeyValue): Registration {
  return JSON.parse(kv.value.toString()) as Registration;
}

/** Split into txn-sized batches with no key twice in one batch. */
function batches<T extends { e: Registration; v: string; aux: Array<[Buffer, string]>; marker: string; gen?: unknown }>(
  items: T[],
): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let ops = 0;
  let bytes = 0;
  let seen = new Set<string>();
  let markers = new Set<string>();
  for (const it of items) {
    const id = `${it.e.namespace}\u0000${it.e.key}`;
    const marker = it.marker;
    const n = 1 + it.aux.length + (it.gen || markers.has(marker) ? 0 : 1);
    const size = it.v.length;
    if (cur.length && (ops + n > MAX_TXN_OPS || bytes + size > MAX_TXN_BYTES || seen.has(id))) {
      out.push(cur);
      cur = [];
      ops = 0;
      bytes = 0;
      seen = new Set();
      markers = new Set();
    }
    cur.push(it);
    ops += 1 + it.aux.length + (it.gen || markers.has(marker) ? 0 : 1);
    bytes += size;
    seen.add(id);
    markers.add(marker);
  }
  if (cur.length) out.push(cur);
  return out;
}
