/**
 * The registry service — the seed's GenServer. Every library call and every CLI command goes
 * through it: validation, namespaces, liveness of local pids (with pid-reuse detection), lazy
 * cleanup plus a periodic sweep, per-key serialisation of mutations for asynchronous backends,
 * operation counters. Storage is the backend's (src/backends/contract.ts). The store-facing
 * methods (pages, digests, counts, restore, overwrite, watch, health) are inherited from
 * ServiceBase (service-base.ts); the sweep itself is sweep.ts (docs/architecture.md).
 */
import os from 'node:os';
import {
  AlreadyRegisteredError,
  type Backend,
  type BackendContext,
  type BulkResult,
  DeadProcessError,
  InvalidInputError,
  type MaybePromise,
  type Meta,
  NotFoundError,
  type Page,
  type ListPlan,
  type Registration,
  type RegisterOptions,
  type ServiceStats,
  type SweepResult,
  then,
} from '../backends/contract.js';
import { withPlans } from '../core/plan.js';
import { openBackend } from '../backends/open.js';
import { storeComparer } from './compare-stores.js';
import { KeyedMutex } from './keyed-mutex.js';
import { LocalLiveness } from './liveness.js';
import { OperationStats, type OpStats, type StatsSnapshot } from './stats.js';
import {
  checkMeta,
  validateKey,
  validateMeta,
  validateNamespace,
  validateNode,
  validatePid,
  validatePidStart,
  validateTimestamp,
} from './validate.js';
import { Slicer, sweepOnce } from './sweep.js';
import type {
  CallOptions,
  ListCallOptions,
  OpenOptions,
  RegisterCallOptions,
  UnregisterCallOptions,
  Via,
} from './service-types.js';
import { bulkRegister } from './service-bulk.js';
import { type CollectedStats, collectStats, signalKey, viaHandle, withHitRate } from './service-handles.js';
import { ServiceBase } from './service-base.js';
import { type SwapCondition, swapRule } from './service-store.js';

export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_CLEANUP_INTERVAL = 30_000;
/** Entries per call to a synchronous backend in list(): bounds each event-loop stall (issue 14 §7). */
const SYNC_SLICE = 256;
export const MAX_PAGE = 10_000;

export type {
  CallOptions,
  ListCallOptions,
  OpenOptions,
  RegisterCallOptions,
  UnregisterCallOptions,
  Via,
} from './service-types.js';

export class ProcessRegistry extends ServiceBase {
  readonly stats: OperationStats;
  private readonly liveness = new LocalLiveness();
  private readonly mutex: KeyedMutex | null;
  private readonly judgeLocally: boolean;
  private readonly syncLookups: boolean;
  private readonly lookupStats: OpStats | null;
  private readonly sweeps: SweepResult[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<SweepResult> | null = null;
  /** `lookup` goes through the cache (OpenOptions.cache). */
  readonly cacheLookups: boolean;

  /** Open a backend by URL and put the service in front of it. */
  static open(opts: OpenOptions = {}): Promise<ProcessRegistry> {
    return ProcessRegistry.openWith((ctx) => openBackend(opts.backend, opts.backendOpts ?? {}, ctx, opts), opts);
  }

  /** Open a backend made by `make` (given the context every backend gets) and put the service in front. */
  static async openWith(
    make: (ctx: BackendContext) => MaybePromise<Backend>,
    opts: Omit<OpenOptions, 'backend'> = {},
  ): Promise<ProcessRegistry> {
    const nodeName = opts.nodeName ?? (process.env.REGISTRY_NODE || os.hostname());
    const holder: { reg?: ProcessRegistry } = {};
    const fromOpts = opts.backendOpts?.cleanupInterval;
    const interval = opts.cleanupInterval ?? (typeof fromOpts === 'number' ? fromOpts : DEFAULT_CLEANUP_INTERVAL);
    const ctx: BackendContext = {
      nodeName,
      isAlive: (e) => holder.reg!.isAlive(e),
      // A read-only service over each side of a hybrid, judging this node name's entries as this one does.
      compareStores: storeComparer((side) => new ProcessRegistry(side, { nodeName, cleanupInterval: 0, stats: false })),
      longLived: interval > 0,
      ...(opts.create === false ? { create: false } : {}),
    };
    const backend = await make(ctx);
    const reg = new ProcessRegistry(backend, { ...opts, nodeName });
    holder.reg = reg;
    return reg;
  }

  /** Put the service in front of an already open backend. */
  constructor(backend: Backend, opts: Omit<OpenOptions, 'backend'> & { nodeName: string }) {
    super(backend, validateNode(opts.nodeName), validateNamespace(opts.namespace ?? DEFAULT_NAMESPACE));
    this.stats = new OperationStats(opts.stats !== false);
    this.mutex = backend.capabilities.synchronous ? null : new KeyedMutex();
    this.judgeLocally = !backend.capabilities.remote;
    this.syncLookups = backend.capabilities.synchronous;
    this.lookupStats = this.stats.enabled ? this.stats.op('lookup') : null;
    const fromOpts = opts.backendOpts?.cleanupInterval;
    const interval = opts.cleanupInterval ?? (typeof fromOpts === 'number' ? fromOpts : DEFAULT_CLEANUP_INTERVAL);
    // By default only where the feed is this process's own (memory:), so the cache cannot lag a
    // writer: on a shared store (a SQLite file, etcd, a node) a cached answer may miss another
    // process's write for a feed delay, and `lookup` promises linearizable answers there (issue 13).
    // The REPL and `registry serve --lookup-cache` ask for it; a library user passes `cache: true`.
    const ownFeed = !backend.capabilities.persistent && !backend.capabilities.remote;
    this.cacheLookups = opts.cache ?? (interval > 0 && ownFeed && hasRevisionedFeed(backend));
    if (interval > 0) {
      this.sweepTimer = setInterval(() => {
        this.cleanup().catch((err) => this.stats.error('sweep', err));
      }, interval);
      this.sweepTimer.unref();
    }
  }

  // --- liveness ----------------------------------------------------------------------------------

  /**
   * Is this stored registration alive? Entries of this node name are judged here, whatever the
   * backend: through a node too, since a client whose node name differs from the node's is the
   * only one that can see its own pids (docs/design.md §1). Other nodes' entries are judged by them.
   */
  isAlive(e: Registration): boolean {
    if (e.node !== this.nodeName) return true;
    return this.liveness.isAlive(e.pid, e.pidStart);
  }

  /**
   * Refuse to register a pid of this node name that is not running (absent or a zombie): exit 2.
   * The same rule and cache as lookup's (a pid given with a start time the caller supplies, as
   * restore does, is judged on the pid alone); makeEntry's start-time read primes the cache.
   */
  assertRunning(entry: Registration): void {
    if (entry.node === this.nodeName && !this.liveness.isAlive(entry.pid))
      throw new DeadProcessError(entry.pid, entry.node);
  }

  // --- the contract, validated -----------------------------------------------------------------

  /**
   * Register `key` for `pid`. Same pid again replaces metadata and timestamps; a dead holder is
   * replaced; a live holder makes it fail with AlreadyRegisteredError (exit 4).
   */
  async register(key: string, pid: number, meta: Meta = {}, opts: RegisterCallOptions = {}): Promise<Registration> {
    return this.registerEntry(this.makeEntry(key, pid, meta, opts));
  }

  /** Validate and complete an entry (namespace, node, pid start, timestamps). */
  makeEntry(
    key: string,
    pid: number,
    meta: Meta = {},
    opts: RegisterCallOptions & { registeredAt?: number; updatedAt?: number } = {},
  ): Registration {
    this.check();
    const namespace = opts.namespace === undefined ? this.namespace : validateNamespace(opts.namespace);
    validateKey(key);
    // The pid as validated: a library caller's numeric string ("123") is stored as the number.
    const pidN = validatePid(pid);
    const node = opts.node === undefined ? this.nodeName : validateNode(opts.node);
    checkMeta(meta);
    // One validation for single and bulk writes (issue 12 item 10).
    const registeredAt =
      opts.registeredAt === undefined ? undefined : validateTimestamp(opts.registeredAt, 'registeredAt');
    const updatedAt = opts.updatedAt === undefined ? undefined : validateTimestamp(opts.updatedAt, 'updatedAt');
    const pidStart = opts.pidStart === undefined ? undefined : validatePidStart(opts.pidStart);
    const now = Date.now();
    return {
      namespace,
      key,
      pid: pidN,
      node,
      meta,
      registeredAt: registeredAt ?? now,
      updatedAt: updatedAt ?? registeredAt ?? now,
      pidStart:
        pidStart !== undefined ? pidStart : node === this.nodeName ? (this.liveness.startOf(pidN) ?? null) : null,
    };
  }

  /**
   * Register a complete, validated entry (see makeEntry). With `replace` (compare-and-swap), a
   * live holder is also replaced when it matches those fields.
   */
  registerEntry(entry: Registration, opts: { replace?: SwapCondition } = {}): Promise<Registration> {
    return this.stats.track('register', () => {
      const rule = opts.replace ? swapRule(this.replaceRule(entry), opts.replace) : this.replaceRule(entry);
      this.assertRunning(entry);
      const run = () =>
        then(this.backend.register(entry, rule), (r) => {
          if (!r.ok) throw new AlreadyRegisteredError(r.holder);
          this.touched(entry.namespace, entry.key);
          return r.entry;
        });
      return this.mutex ? this.mutex.run(`${entry.namespace}\u0000${entry.key}`, run) : run();
    });
  }

  /** The rule handed to the backend: same process again, or the holder is dead. */
  private replaceRule(entry: Registration): RegisterOptions {
    return {
      replaceIf: (h) => (h.pid === entry.pid && h.node === entry.node) || !this.isAlive(h),
    };
  }

  /**
   * The live entry for `key`, or undefined. A dead entry found is removed (lazy cleanup). Served
   * from the lookup cache when `cacheLookups` (OpenOptions.cache).
   */
  lookup(key: string, opts: CallOptions = {}): Promise<Registration | undefined> {
    if (this.cacheLookups) return this.stats.track('lookup', () => this.cachedLookup(key, opts));
    return this.stats.track('lookup', () => this.lookupCore(this.ns(opts), key));
  }

  /** lookup without the cache: one read of the backend (what the cache itself reads through). */
  lookupUncached(key: string, opts: CallOptions = {}): Promise<Registration | undefined> {
    return Promise.resolve(this.lookupCore(this.ns(opts), key));
  }

  /** Synchronous lookup, for backends with the `synchronous` capability (memory, sqlite). */
  lookupSync(key: string, opts?: CallOptions): Registration | undefined {
    // The hot path of a local registry: no closure, no Promise, one-slot liveness cache, one
    // timed call in `sampleEvery` (counts stay exact).
    if (!this.syncLookups)
      throw new InvalidInputError(`the ${this.backend.name} backend is asynchronous: use lookup()`);
    const s = this.lookupStats;
    if (s !== null) {
      if (s.hit()) {
        const t0 = performance.now();
        const e = this.lookupNow(key, opts);
        s.record((performance.now() - t0) * 1000);
        return e;
      }
    }
    return this.lookupNow(key, opts);
  }

  private lookupNow(key: string, opts: CallOptions | undefined): Registration | undefined {
    try {
      if (this.closed) this.check();
      const namespace =
        opts === undefined || opts.namespace === undefined ? this.namespace : validateNamespace(opts.namespace);
      if (typeof key !== 'string' || key.length === 0) validateKey(key);
      const e = this.backend.lookup(namespace, key) as Registration | undefined;
      if (e === undefined || this.isAlive(e)) return e;
      // Only synchronous backends get here (lookupSync checks syncLookups): unregister answers a
      // boolean, so there is no promise to drop.
      void this.removeDead(e);
      return undefined;
    } catch (err) {
      if (this.lookupStats) this.stats.error('lookup', err);
      throw err;
    }
  }

  private lookupCore(namespace: string, key: string): MaybePromise<Registration | undefined> {
    if (this.closed) this.check();
    if (typeof key !== 'string' || key.length === 0) validateKey(key);
    const found = this.backend.lookup(namespace, key);
    if (found instanceof Promise) return found.then((e) => this.judged(e));
    return this.judged(found);
  }

  /** A found entry if alive; a dead one is removed (compare-and-delete) and reads as absent. */
  private judged(e: Registration | undefined): MaybePromise<Registration | undefined> {
    if (!e || this.isAlive(e)) return e;
    return then(this.removeDead(e), () => undefined);
  }

  /** Like lookup, but NotFoundError (exit 3) when absent. */
  async get(key: string, opts: CallOptions = {}): Promise<Registration> {
    const e = await this.lookup(key, opts);
    if (!e) throw new NotFoundError(this.ns(opts), key);
    return e;
  }

  /**
   * Remove `key`; idempotent; true when something was removed. With `pid`, `node` or
   * `registeredAt`, only a holder matching them is removed (compare-and-delete).
   */
  unregister(key: string, opts: UnregisterCallOptions = {}): Promise<boolean> {
    return this.stats.track('unregister', () => {
      this.check();
      const namespace = this.ns(opts);
      validateKey(key);
      const { pid, node, registeredAt } = opts;
      const cond =
        pid === undefined && node === undefined && registeredAt === undefined
          ? undefined
          : {
              ...(pid === undefined ? {} : { pid }),
              ...(node === undefined ? {} : { node }),
              ...(registeredAt === undefined ? {} : { registeredAt }),
            };
      const run = () =>
        then(this.backend.unregister(namespace, key, cond), (removed) => {
          this.touched(namespace, key);
          return removed;
        });
      return this.mutex ? this.mutex.run(`${namespace}\u0000${key}`, run) : run();
    });
  }

  /** One page of live entries ordered by key; `next` is the cursor of the following page. */
  list(opts: ListCallOptions = {}): Promise<Page> {
    return this.stats.track('list', async () => {
      this.check();
      const namespace = this.ns(opts);
      const limit = Math.min(Math.max(1, opts.limit ?? 1000), MAX_PAGE);
      if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
        throw new InvalidInputError(`invalid --limit ${opts.limit}: use a whole number of at least 1`);
      }
      const items: Registration[] = [];
      const plans: ListPlan[] = [];
      let after = opts.after;
      const slicer = new Slicer();
      for (;;) {
        await slicer.maybe(); // a long filtered scan lets timers and requests run
        // A synchronous backend is asked for SYNC_SLICE entries at a time (one call is one stall).
        const want = limit - items.length;
        const page = await this.backend.list(namespace, {
          after,
          limit: this.syncLookups ? Math.min(want, SYNC_SLICE) : want,
          where: opts.where,
        });
        if (page.plan) plans.push(page.plan);
        for (const e of page.items) {
          if (this.isAlive(e)) items.push(e);
          else await this.removeDead(e);
        }
        if (!page.next) return withPlans({ items }, plans);
        const last = items.at(-1);
        if (items.length >= limit && last !== undefined) return withPlans({ items, next: last.key }, plans); // limit >= 1
        after = page.next;
      }
    });
  }

  /** Every live entry of a namespace, page by page (bounded memory). */
  async *entries(opts: Omit<ListCallOptions, 'after'> & { pageSize?: number } = {}): AsyncGenerator<Registration> {
    // Pages of a synchronous backend come back without a macrotask between them, and the
    // consumer's work runs inside this loop: yield every few ms, mid-page too.
    const slicer = new Slicer();
    for await (const page of this.pages(opts))
      for (const e of page.items) {
        yield e;
        if (slicer.due()) await slicer.yield();
      }
  }

  /** Replace the metadata (or merge-patch it, RFC 7386); NotFoundError for absent or dead keys. */
  updateMetadata(key: string, meta: Meta, opts: CallOptions & { merge?: boolean } = {}): Promise<Registration> {
    return this.stats.track('updateMetadata', async () => {
      this.check();
      const namespace = this.ns(opts);
      validateKey(key);
      validateMeta(meta);
      const run = async () => {
        const live = await this.lookupCore(namespace, key);
        if (!live) throw new NotFoundError(namespace, key);
        const next = await this.backend.updateMetadata(namespace, key, meta, {
          merge: !!opts.merge,
          validate: (m) => void validateMeta(m),
        });
        this.touched(namespace, key);
        if (!next) throw new NotFoundError(namespace, key);
        return next;
      };
      return this.mutex ? this.mutex.run(`${namespace}\u0000${key}`, run) : run();
    });
  }

  /** Live registrations in a namespace. Sweeps dead local processes first, so it is exact. */
  async count(opts: CallOptions = {}): Promise<number> {
    return this.stats.track('count', async () => {
      this.check();
      const namespace = this.ns(opts);
      if (this.judgeLocally && this.backend.countLive) return this.backend.countLive(namespace); // read-only, exact
      if (this.backend.processes || !this.judgeLocally) {
        if (this.judgeLocally) await this.cleanup();
        return this.backend.count(namespace);
      }
      let n = 0;
      for await (const _ of this.entries({ namespace })) n++;
      return n;
    });
  }

  /** Register many entries; per-entry results in input order; `atomic`: all or nothing. */
  bulkRegister(
    items: Array<{ key: string; pid: number; meta?: Meta } & RegisterCallOptions>,
    opts: { atomic?: boolean } = {},
  ): Promise<BulkResult[]> {
    return this.stats.track('bulkRegister', () => {
      this.check();
      return bulkRegister(this, items, opts, (ns, key) => this.touched(ns, key));
    });
  }

  /** A handle on a name (Elixir's via tuple). */
  via(key: string, opts: CallOptions = {}): Via {
    const namespace = this.ns(opts);
    validateKey(key);
    return viaHandle(this, namespace, key);
  }

  /**
   * Send `sig` to the live process holding `key`, checked right before the kill by the process
   * whose node name the entry has (docs/design.md §1): through a node, the node checks and sends for
   * its own entries; entries of this client's node name are checked and sent here. A pid is never
   * signalled by anyone else, nor when it is not the registered process any more (pid reuse).
   * NotFoundError (exit 3) when no live process holds the key; InvalidInputError (exit 2) when it is
   * another node's, or the start time is unknown.
   */
  async signal(
    key: string,
    sig: NodeJS.Signals | number = 'SIGTERM',
    opts: CallOptions = {},
  ): Promise<{ namespace: string; key: string; pid: number; node: string; signal: string }> {
    this.check();
    const namespace = this.ns(opts);
    validateKey(key);
    return signalKey(this, namespace, key, sig, (e) => void Promise.resolve(this.removeDead(e)).catch(() => undefined));
  }

  /**
   * Sweep: remove registrations of dead local processes now. Runs one sweep at a time; the
   * periodic timer calls it every cleanupInterval.
   */
  cleanup(): Promise<SweepResult> {
    this.check();
    if (!this.sweeping) {
      this.sweeping = sweepOnce({
        backend: this.backend,
        nodeName: this.nodeName,
        judgeLocally: this.judgeLocally,
        isAlive: (e) => this.isAlive(e),
        pidAlive: (pid, start) => this.liveness.isAlive(pid, start),
        removeDead: (e) => this.removeDead(e),
        stopped: () => this.closed,
      })
        .then((r) => {
          this.recordSweep(r);
          return r;
        })
        .finally(() => {
          this.sweeping = null;
        });
    }
    return this.sweeping;
  }

  private recordSweep(r: SweepResult): void {
    this.sweeps.push(r);
    if (this.sweeps.length > 20) this.sweeps.shift();
  }

  /** Recent sweeps, newest last. */
  sweepHistory(): SweepResult[] {
    return [...this.sweeps];
  }

  /** Operation counters, latencies, sweeps. */
  statsSnapshot(): StatsSnapshot & { sweeps: SweepResult[]; backend: string; node: string } {
    return { ...this.stats.snapshot(), sweeps: this.sweepHistory(), backend: this.backend.url, node: this.nodeName };
  }

  /**
   * A lookup served from the optimization layer's cache (src/registry/lookup-cache.ts): coherent
   * across nodes through the backend's change feed where it has one, invalidated at once by this
   * service's own writes, and at most `ttlMs` stale otherwise (default 30 s; fixed by the first call).
   */
  async cachedLookup(key: string, opts: CallOptions & { ttlMs?: number } = {}): Promise<Registration | undefined> {
    this.check();
    this.cache ??= import('./lookup-cache.js').then((m) => m.LookupCache.open(this, { ttlMs: opts.ttlMs }));
    return (await this.cache).lookup(key, { namespace: this.ns(opts) });
  }

  /** Hits, misses and invalidations of the lookup cache (undefined until cachedLookup is used). */
  async cacheStats() {
    return this.cache ? (await this.cache).stats() : undefined;
  }

  /** This service's counters, sweeps and, once the lookup cache is used, its hit rate (`optimization.cache`). */
  async localStats(): Promise<ServiceStats & ReturnType<ProcessRegistry['statsSnapshot']>> {
    const cache = await this.cacheStats();
    return { ...this.statsSnapshot(), ...(cache ? { optimization: { cache: withHitRate(cache) } } : {}) };
  }

  /**
   * Everything `registry stats` shows besides health: stored registrations per namespace, and the
   * counters — a node's own when the backend fetches them (GET /v1/stats), else this service's.
   */
  collectStats(): Promise<CollectedStats> {
    this.check();
    return collectStats(this);
  }

  /** Stop the sweep and close the backend. Later calls fail with ClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.sweeping) await this.sweeping.catch(() => undefined);
    if (this.cache) await (await this.cache.catch(() => undefined))?.close();
    await this.backend.close();
  }
}

/** A feed with revisions: what keeps a lookup cache coherent with writes by others. */
function hasRevisionedFeed(b: Backend): boolean {
  return !!b.watch && !!b.currentRevision;
}
