/**
 * The registry service — the seed's GenServer. Every library call and every CLI command goes
 * through it: validation, namespaces, liveness of local pids (with pid-reuse detection), lazy
 * cleanup plus a periodic sweep, per-key serialisation of mutations for asynchronous backends,
 * operation counters. Storage is the backend's (src/backends/contract.ts).
 */
import os from 'node:os';
import {
  AlreadyRegisteredError,
  type Backend,
  type BackendContext,
  type BulkResult,
  ClosedError,
  DeadProcessError,
  InvalidInputError,
  type MaybePromise,
  type Meta,
  NotFoundError,
  type ListPlan,
  type Page,
  RegistryError,
  type Registration,
  type RegisterOptions,
  type SweepResult,
  type IntegrityReport,
  UnreachableError,
  then,
  asRegistryError,
  withPlans,
} from '../backends/contract.js';
import { openBackend, type OpenBackendOptions } from '../backends/open.js';
import { storeComparer } from './compare-stores.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { LookupCache } from './lookup-cache.js';
import { LocalLiveness, signalTarget } from './liveness.js';
import { OperationStats, type OpStats, type StatsSnapshot } from './stats.js';
import {
  checkMeta,
  validateKey,
  validateMeta,
  validateNamespace,
  validateNode,
  validatePid,
  notWritten,
  rolledBack,
  validatePidStart,
  validateTimestamp,
} from './validate.js';
import { roundMs } from '../core/time.js';
import { Slicer, sweepProcesses } from './sweep.js';

export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_CLEANUP_INTERVAL = 30_000;
/** Entries per call to a synchronous backend in list(): bounds each event-loop stall (issue 14 §7). */
const SYNC_SLICE = 256;
export const MAX_PAGE = 10_000;

export interface OpenOptions extends OpenBackendOptions {
  /** Backend URL (`memory:`, `sqlite:PATH`, `http://…`, `etcd://…`); default: the SQLite default file. */
  backend?: string;
  /** Options passed to the backend factory (cleanupInterval, leaseTtl, …). */
  backendOpts?: Record<string, unknown>;
  /** The local node name (default `os.hostname()`). */
  nodeName?: string;
  /** Default namespace for calls that do not name one (default `default`). */
  namespace?: string;
  /**
   * Periodic sweep of dead local registrations, in ms (default `backendOpts.cleanupInterval` or
   * 30 s); 0 disables it. One-shot CLI calls pass 0: the long-lived processes sweep.
   */
  cleanupInterval?: number;
  /** Record operation counters and latencies (default true). */
  stats?: boolean;
  /** false: only read — a store that does not exist is not created (NoRegistryError, exit 6). Default true. */
  create?: boolean;
}

export interface CallOptions {
  namespace?: string;
}

export interface RegisterCallOptions extends CallOptions {
  /** The node owning the pid (default: this node). Other nodes' pids are not checked here. */
  node?: string;
  /** Known process start time (default: read from /proc for local pids). */
  pidStart?: number | null;
}

export interface ListCallOptions extends CallOptions {
  after?: string;
  limit?: number;
  where?: Array<[string, string]>;
}

/** A handle on a name, like Elixir's `{:via, Registry, {reg, key}}`. */
export interface Via {
  readonly namespace: string;
  readonly key: string;
  /** The pid holding the name, or undefined. */
  whereis(): Promise<number | undefined>;
  /** Register `pid` under the name. */
  register(pid: number, meta?: Meta): Promise<Registration>;
  /** Send a signal to the local process holding the name; false when nobody holds it. */
  signal(sig?: NodeJS.Signals | number): Promise<boolean>;
  unregister(): Promise<boolean>;
}

export class ProcessRegistry {
  readonly backend: Backend;
  readonly nodeName: string;
  readonly namespace: string;
  readonly stats: OperationStats;
  private readonly liveness = new LocalLiveness();
  private readonly mutex: KeyedMutex | null;
  private readonly judgeLocally: boolean;
  private readonly syncLookups: boolean;
  private readonly lookupStats: OpStats | null;
  private readonly sweeps: SweepResult[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<SweepResult> | null = null;
  private cache: Promise<LookupCache> | null = null;
  private closed = false;

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
      compareStores: storeComparer((e) => holder.reg!.isAlive(e)),
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
    this.backend = backend;
    this.nodeName = validateNode(opts.nodeName);
    this.namespace = validateNamespace(opts.namespace ?? DEFAULT_NAMESPACE);
    this.stats = new OperationStats(opts.stats !== false);
    this.mutex = backend.capabilities.synchronous ? null : new KeyedMutex();
    this.judgeLocally = !backend.capabilities.remote;
    this.syncLookups = backend.capabilities.synchronous;
    this.lookupStats = this.stats.enabled ? this.stats.op('lookup') : null;
    const fromOpts = opts.backendOpts?.cleanupInterval;
    const interval = opts.cleanupInterval ?? (typeof fromOpts === 'number' ? fromOpts : DEFAULT_CLEANUP_INTERVAL);
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
    validatePid(pid);
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
      pid,
      node,
      meta,
      registeredAt: registeredAt ?? now,
      updatedAt: updatedAt ?? registeredAt ?? now,
      pidStart:
        pidStart !== undefined ? pidStart : node === this.nodeName ? (this.liveness.startOf(pid) ?? null) : null,
    };
  }

  /** Register a complete, validated entry (see makeEntry). */
  registerEntry(entry: Registration): Promise<Registration> {
    return this.stats.track('register', () => {
      this.assertRunning(entry);
      const run = () =>
        then(this.backend.register(entry, this.replaceRule(entry)), (r) => {
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

  /** The live entry for `key`, or undefined. A dead entry found is removed (lazy cleanup). */
  lookup(key: string, opts: CallOptions = {}): Promise<Registration | undefined> {
    return this.stats.track('lookup', () => this.lookupCore(this.ns(opts), key));
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

  /** Remove `key`; idempotent; true when something was removed. */
  unregister(key: string, opts: CallOptions & { pid?: number } = {}): Promise<boolean> {
    return this.stats.track('unregister', () => {
      this.check();
      const namespace = this.ns(opts);
      validateKey(key);
      const run = () =>
        then(
          this.backend.unregister(namespace, key, opts.pid === undefined ? undefined : { pid: opts.pid }),
          (removed) => {
            this.touched(namespace, key);
            return removed;
          },
        );
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
    let after: string | undefined;
    const limit = opts.pageSize ?? 1000;
    const slicer = new Slicer();
    for (;;) {
      const page = await this.list({ ...opts, after, limit });
      // Pages of a synchronous backend come back without a macrotask between them, and the
      // consumer's work runs inside this loop: yield every few ms, mid-page too.
      for (const e of page.items) {
        yield e;
        if (slicer.due()) await slicer.yield();
      }
      if (!page.next) return;
      after = page.next;
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

  /** Namespaces holding entries. */
  async namespaces(): Promise<string[]> {
    this.check();
    return this.backend.namespaces();
  }

  /** Register many entries; per-entry results in input order; `atomic`: all or nothing. */
  async bulkRegister(
    items: Array<{ key: string; pid: number; meta?: Meta } & RegisterCallOptions>,
    opts: { atomic?: boolean } = {},
  ): Promise<BulkResult[]> {
    return this.stats.track('bulkRegister', async () => {
      this.check();
      const results: BulkResult[] = new Array(items.length);
      const valid: Registration[] = [];
      const where: number[] = [];
      for (const [i, it] of items.entries()) {
        try {
          const e = this.makeEntry(it.key, it.pid, it.meta ?? {}, it);
          this.assertRunning(e);
          valid.push(e);
          where.push(i);
        } catch (err) {
          results[i] = { ok: false, error: asRegistryError(err) };
        }
      }
      if (opts.atomic && valid.length !== items.length) {
        const error = notWritten();
        return items.map((_, i) => results[i] ?? { ok: false, error });
      }
      // Replace a holder only when it is dead or is the very process this batch registers.
      const batchEntry = batchIndex(valid);
      const rule: RegisterOptions = {
        replaceIf: (h) => {
          const e = batchEntry(h);
          return (!!e && e.pid === h.pid && e.node === h.node) || !this.isAlive(h);
        },
      };
      let out: BulkResult[];
      if (this.backend.bulkRegister) {
        out = await this.backend.bulkRegister(valid, { ...rule, atomic: opts.atomic });
        // An atomic batch that failed anywhere was rolled back: no item was written (item 11).
        if (opts.atomic && out.some((r) => !r.ok)) out = rolledBack(out);
      } else {
        out = [];
        for (const e of valid) {
          try {
            out.push(await this.backend.register(e, rule));
          } catch (err) {
            out.push({ ok: false, error: asRegistryError(err) });
          }
        }
      }
      const cached = this.cache !== null;
      out.forEach((r, j) => {
        const i = where[j];
        const e = valid[j];
        if (i === undefined || e === undefined)
          throw new RegistryError(
            'INTERNAL',
            `the ${this.backend.name} backend answered ${out.length} results for ${valid.length} entries`,
          );
        results[i] = r;
        if (cached && r.ok) this.touched(e.namespace, e.key);
      });
      return results;
    });
  }

  /** A handle on a name (Elixir's via tuple). */
  via(key: string, opts: CallOptions = {}): Via {
    const namespace = this.ns(opts);
    validateKey(key);
    return {
      namespace,
      key,
      whereis: async () => (await this.lookup(key, { namespace }))?.pid,
      register: (pid, meta) => this.register(key, pid, meta, { namespace }),
      unregister: () => this.unregister(key, { namespace }),
      signal: async (sig = 'SIGTERM') => {
        try {
          await this.signal(key, sig, { namespace });
          return true;
        } catch (err) {
          if (err instanceof NotFoundError) return false;
          throw err;
        }
      },
    };
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
    let e: Registration | undefined;
    if (this.backend.signal) {
      const r = await this.backend.signal(namespace, key, sig);
      if (r.ok) return r.sent;
      e = r.holder; // not the node's own: ours to check and send, if it has our node name
    } else e = await this.lookup(key, { namespace });
    if (!e) throw new NotFoundError(namespace, key);
    if (e.node !== this.nodeName)
      throw new InvalidInputError(
        `"${key}" is held by pid ${e.pid} on node ${e.node}, not this node (${this.nodeName}): run the signal there`,
        { details: { holder: e } },
      );
    return this.signalLocal(e, sig);
  }

  /** Check `e` against the process now holding its pid (fresh /proc read), then signal it. */
  private signalLocal(e: Registration, sig: NodeJS.Signals | number) {
    const check = signalTarget(e.pid, e.pidStart, e.registeredAt);
    if (check === 'gone' || check === 'reused') {
      void Promise.resolve(this.removeDead(e)).catch(() => undefined);
      throw new NotFoundError(e.namespace, e.key);
    }
    if (check === 'unverifiable')
      throw new InvalidInputError(
        `not signalling pid ${e.pid} of "${e.key}": its start time was not recorded, so a reused pid cannot be ruled out: register it again (registry register ${e.key} --pid ${e.pid})`,
      );
    try {
      process.kill(e.pid, sig);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') throw new NotFoundError(e.namespace, e.key);
      if (code === 'EPERM')
        throw new InvalidInputError(`not permitted to signal pid ${e.pid}: run as its owner`, { cause: err });
      throw err;
    }
    return { namespace: e.namespace, key: e.key, pid: e.pid, node: e.node, signal: String(sig) };
  }

  /**
   * Sweep: remove registrations of dead local processes now. Runs one sweep at a time; the
   * periodic timer calls it every cleanupInterval.
   */
  cleanup(): Promise<SweepResult> {
    this.check();
    if (!this.sweeping) {
      this.sweeping = this.sweepOnce().finally(() => {
        this.sweeping = null;
      });
    }
    return this.sweeping;
  }

  private async sweepOnce(): Promise<SweepResult> {
    const t0 = performance.now();
    let checked = 0;
    let removed = 0;
    if (!this.judgeLocally && this.backend.cleanup) {
      const r = await this.backend.cleanup();
      // The node swept its own node name; entries of ours (a client on another host) are ours to sweep.
      const own =
        (r as SweepResult & { node?: string }).node === this.nodeName ? undefined : await this.sweepOwn(false);
      const out = own ? { ...r, checked: r.checked + own.checked, removed: r.removed + own.removed } : r;
      this.recordSweep(out);
      return out;
    }
    if (this.backend.processes && this.backend.removeProcesses) {
      ({ checked, removed } = await sweepProcesses(
        this.backend,
        this.nodeName,
        (pid, start) => this.liveness.isAlive(pid, start),
        { stopped: () => this.closed },
      ));
    } else ({ checked, removed } = await this.sweepOwn(true));
    const at = Date.now();
    await this.backend.markCleanup?.(at);
    // Hundredths of a millisecond: what a clock reading means, not 2.627536999999961.
    const r = { checked, removed, at, durationMs: roundMs(performance.now() - t0) };
    this.recordSweep(r);
    return r;
  }

  /** Page through every namespace and remove the dead entries of this node name (checked: all entries, or only ours). */
  private async sweepOwn(countOthers = true): Promise<{ checked: number; removed: number }> {
    let checked = 0;
    let removed = 0;
    for (const namespace of await this.backend.namespaces()) {
      let after: string | undefined;
      for (;;) {
        const page = await this.backend.list(namespace, { after, limit: 1000 });
        for (const e of page.items) {
          if (e.node !== this.nodeName && !countOthers) continue;
          checked++;
          if (!this.isAlive(e) && (await this.removeDead(e))) removed++;
        }
        if (!page.next) break;
        after = page.next;
      }
    }
    return { checked, removed };
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

  /** The backend's health report. */
  async healthCheck() {
    this.check();
    return this.backend.healthCheck();
  }

  /**
   * Before reading a whole store (dump, list/count of every namespace): a backend that can be
   * damaged on disk checks itself, and a damaged store is refused (UnreachableError, exit 6) rather
   * than read into a valid-looking partial result. Backends without `checkIntegrity` pass.
   */
  async assertIntact(): Promise<IntegrityReport | undefined> {
    this.check();
    const r = await this.backend.checkIntegrity?.();
    if (r && !r.ok)
      throw new UnreachableError(
        `${this.backend.url} is damaged (${r.problems.slice(0, 2).join('; ')}): nothing was read; restore it from a dump or a copy`,
        { recoverable: false, details: { problems: r.problems } },
      );
    return r;
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

  get isClosed(): boolean {
    return this.closed;
  }

  // --- helpers -----------------------------------------------------------------------------------

  private ns(opts: CallOptions): string {
    return opts.namespace === undefined ? this.namespace : validateNamespace(opts.namespace);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('this registry');
  }

  /** A write through this service: drop the key from the lookup cache. */
  private touched(namespace: string, key: string): void {
    if (this.cache)
      void this.cache.then(
        (c) => c.invalidate(namespace, key),
        () => undefined,
      );
  }

  /** Compare-and-delete a dead entry (a fresh registration of the key is left alone). */
  private removeDead(e: Registration) {
    return this.backend.unregister(e.namespace, e.key, { pid: e.pid, registeredAt: e.registeredAt, node: e.node });
  }
}

/**
 * The batch entry a holder would be replaced by (the last one for its namespace and key), found
 * through a map built on first use; keyed by bare key when the batch is all one namespace.
 */
function batchIndex(valid: Registration[]): (h: Registration) => Registration | undefined {
  let byKey: Map<string, Registration> | undefined;
  let oneNs: string | null = null;
  return (h) => {
    if (!byKey) {
      byKey = new Map();
      oneNs = valid[0]?.namespace ?? null;
      for (const e of valid) if (e.namespace !== oneNs) oneNs = null;
      for (const e of valid) byKey.set(oneNs !== null ? e.key : `${e.namespace}\u0000${e.key}`, e);
    }
    if (oneNs !== null) return h.namespace === oneNs ? byKey.get(h.key) : undefined;
    return byKey.get(`${h.namespace}\u0000${h.key}`);
  };
}
