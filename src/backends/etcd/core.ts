import { matchesWhere, scalarText } from '../../core/meta.js';
import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  type IKeyValue,
  type IRequestOp,
  type ICompare,
  type ITxnRequest,
  type ITxnResponse,
  type Watcher,
} from 'etcd3';
import {
  type BackendContext,
  type Capabilities,
  ClosedError,
  type ListOptions,
  OutcomeUnknownError,
  type Page,
  type Registration,
  RegistryError,
  UnreachableError,
  defaultCapabilities,
} from '../contract.js';
import {
  MAX_TXN_OPS,
  MAX_INDEX_KEYS,
  MAX_INDEX_VALUE,
  MARKER_CACHE_MAX,
  type MarkerGeneration,
  CMP_EQUAL,
  TARGET_CREATE,
  ZERO,
  prefixEnd,
  put,
  modIs,
  markerId,
  parseEntry,
} from './keys.js';
import { LeasePool } from './leases.js';
import {
  HostBreaker,
  CappedBackoff,
  type Probe,
  probeCluster,
  quorumMessage,
  isTransient,
  WRITES,
  isUnsent,
  Applied,
  Redo,
  isAmbiguous,
  isLeaseGone,
  permanentError,
  withDeadline,
} from './faults.js';
import { ETCD_BACKEND, DEFAULT_KEYS_PER_LEASE, DEFAULT_INDEX_FIELDS, type EtcdOptions } from './options.js';

/**
 * The etcd backend's state and helpers: connection, key builders, markers, exactly-once writes,
 * retries and probing. The contract methods are layered on top (transactions.ts, watch.ts, index.ts).
 */
export abstract class EtcdCore {
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
  protected readonly root: string;
  protected readonly indexFields: Set<string>;
  protected readonly serializable: boolean;
  protected readonly callTimeout: number;
  protected readonly retryTimeout: number;
  protected readonly leases: LeasePool | null;
  protected readonly watchers = new Set<Watcher>();
  protected closed = false;
  protected probing: { at: number; p: Promise<Probe> } | null = null;
  /**
   * Exactly-once writes (see `attempt`): this instance's writer id, the revision of its fence key
   * (0: absent), the highest store revision any answer showed, and a token counter.
   */
  protected readonly writer = randomBytes(8).toString('hex');
  protected fence = 0;
  protected seen = 0;
  protected tokens = 0;
  protected wrote = false;
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
  protected readonly markerCache = new Map<string, MarkerGeneration>();

  constructor(
    readonly endpoints: string[],
    prefix: string,
    readonly opts: EtcdOptions,
    protected readonly ctx: BackendContext,
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

  /** Every key under `base`, 1000 per request, all pages read at the first page's revision (one snapshot). */
  protected async *scan(what: string, base: Buffer, linearizable = false): AsyncGenerator<IKeyValue> {
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

  protected async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: this.bytes('/r/'), count_only: true, revision, serializable: true });
      return false;
    } catch (err) {
      return /compacted/i.test((err as Error).message);
    }
  }

  // --- helpers -----------------------------------------------------------------------------------

  protected check(): void {
    if (this.closed) throw new ClosedError('the etcd backend');
  }

  protected bytes(path: string): Buffer {
    return Buffer.from(`${this.root}${path}`);
  }

  protected nsPrefix(ns: string): Buffer {
    return this.bytes(`/r/${ns}/`);
  }

  protected rkey(ns: string, key: string): Buffer {
    return this.bytes(`/r/${ns}/${key}`);
  }

  /** Where the markers of a process live: `p/<node>/<pid>/<pidStart|->/`. */
  protected markerBase(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>): Buffer {
    return this.bytes(`/p/${encodeURIComponent(e.node)}/${e.pid}/${e.pidStart ?? '-'}/`);
  }

  /** The marker a write makes: `s` on its session lease, `n` for a plain (lease-less) write. */
  protected markerKey(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>, leased: boolean): Buffer {
    return Buffer.concat([this.markerBase(e), Buffer.from(leased ? 's' : 'n')]);
  }

  /** `if createRevision(marker) == 0 then put marker` as a nested txn (an existing marker is left untouched). */
  protected markerOp(e: Registration, lease: string | undefined): IRequestOp {
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
  protected markerOps(entries: Registration[]): Array<(lease: string | undefined) => IRequestOp> {
    const seen = new Map<string, Registration>();
    for (const e of entries) {
      const id = markerId(e);
      if (!seen.has(id)) seen.set(id, e);
    }
    return [...seen.values()].map((e) => (lease) => this.markerOp(e, lease));
  }

  protected generationKey(node: string): Buffer {
    return this.bytes(`/g/${encodeURIComponent(node)}`);
  }

  /** The processes of `node` whose plain marker this instance wrote, valid while `g/<node>` stays at `revision`. */
  protected async markerGeneration(node: string): Promise<MarkerGeneration> {
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
  protected async checkGenerations(relied: Map<string, MarkerGeneration>): Promise<void> {
    for (const [node, g] of relied) {
      const kv = await this.get(this.generationKey(node));
      if ((kv?.mod_revision ?? '0') !== g.revision && this.markerCache.get(node) === g) this.markerCache.delete(node);
    }
  }

  /** A committed write counted one key per marker on its lease: give back those of markers that existed. */
  protected settleMarkers(
    lease: string | undefined,
    r: { responses: Array<{ response_txn?: { succeeded: boolean } }> },
  ): void {
    if (!this.leases || !lease) return;
    const existed = r.responses.filter((x) => x.response_txn && !x.response_txn.succeeded).length;
    if (existed) this.leases.release(lease, existed);
  }

  /** The index keys of an entry (or its "not indexed" key), with their values: they share its lease. */
  protected auxKeys(e: Registration): Array<[Buffer, string]> {
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
  protected staleAux(old: Registration, next: Array<[Buffer, string]>): IRequestOp[] {
    const keep = new Set(next.map(([k]) => k.toString('latin1')));
    return this.auxKeys(old)
      .filter(([k]) => !keep.has(k.toString('latin1')))
      .map(([k]) => ({ request_delete_range: { key: k } }));
  }

  /**
   * Delete entry `e` (read as `kv`) and its index keys if it has not changed since: true, or the
   * entry as it is now (read in the same txn).
   */
  protected async deleteIfUnchanged(
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

  protected deleteOps(e: Registration): IRequestOp[] {
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

  protected fenceKey(): Buffer {
    return this.bytes(`/w/${this.writer}`);
  }

  protected tokenKey(): Buffer {
    return this.bytes(`/w/${this.writer}/t`);
  }

  protected saw(revision: string | number | undefined): void {
    const r = Number(revision ?? 0);
    if (r > this.seen) this.seen = r;
  }

  /**
   * One attempt of a write txn, fenced and tokened (see above). Answers the txn's response (its
   * responses in the caller's order); throws `Applied` (the call's answer: `outcome()`) when an
   * ambiguous attempt turns out applied, `Redo` when it certainly was not (decide again), or
   * OutcomeUnknownError.
   */
  protected async attempt<T>(what: string, key: string, req: ITxnRequest, outcome: () => T): Promise<ITxnResponse> {
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

  protected fenceCompare(fence: number): ICompare {
    return fence === 0
      ? { key: this.fenceKey(), target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }
      : modIs(this.fenceKey(), String(fence));
  }

  /** Was the attempt with `token` (sent after revision `since`) applied? See the section comment. */
  protected async resolve(what: string, key: string, token: string, since: number, cause: unknown): Promise<boolean> {
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

  protected unknown(what: string, key: string, why: string, cause: unknown): OutcomeUnknownError {
    this.writeStats.unknown++;
    return new OutcomeUnknownError(
      `${what}: outcome unknown: the request reached etcd but its answer was lost, and whether it was applied could not be established (${why}). It may have been applied (whole, or not at all): check with \`registry lookup ${key}\` once etcd answers`,
      { cause },
    );
  }

  /** Whether `token` was put into this writer's token key in revisions (since, upTo]. */
  protected async replay(token: string, since: number, upTo: number): Promise<boolean> {
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
  protected leaseLost(err: unknown, lease: string | undefined): undefined {
    if (lease && this.leases && isLeaseGone(err)) {
      this.leases.drop(lease);
      return undefined;
    }
    throw err;
  }

  protected async leaseFor(keys: number): Promise<string | undefined> {
    return this.leases ? this.leases.acquire(keys) : undefined;
  }

  protected async get(key: Buffer): Promise<IKeyValue | undefined> {
    return this.rpc('lookup', () => this.rawGet(key));
  }

  protected async rawGet(key: Buffer): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key, serializable: this.serializable });
    this.saw(res.header.revision);
    return res.kvs[0];
  }

  /** A linearizable read whatever `consistency` says: what a conditional write decides from. */
  protected async freshGet(key: Buffer): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key, serializable: false });
    this.saw(res.header.revision);
    return res.kvs[0];
  }

  protected async listByIndex(
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
  protected async rpc<T>(what: string, fn: () => Promise<T>): Promise<T> {
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
  protected probe(fresh = false): Promise<Probe> {
    const now = Date.now();
    if (!fresh && this.probing && now - this.probing.at < 250) return this.probing.p;
    const p = probeCluster(this.endpoints);
    this.probing = { at: now, p };
    return p;
  }
}
