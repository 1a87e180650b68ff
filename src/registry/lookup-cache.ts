/**
 * The optimization layer's `cachedLookup` (design §3): a lookup cache kept coherent across nodes by
 * the backend's change feed. A change made through any node updates or drops the cached entry as
 * soon as its event arrives; writes through this service drop it at once; a TTL bounds staleness
 * (the only bound on a backend without a feed); a compacted or broken feed drops the whole cache and
 * watches again from the current revision (resync). A read racing an event for the same key is not
 * cached when the backend says which revision the read reflects (`lookupAt`), or, without it,
 * whenever an event for the key arrived during the read.
 *
 *   const cache = await LookupCache.open(registry, { ttlMs: 30_000 });   // or registry.cachedLookup(key)
 *   await cache.lookup('web-1', { namespace: 'prod' });   // hit, or a read through the service
 *   cache.onChange = (ns, key, revision) => { ... };      // observe invalidations (benchmarks)
 *   await cache.close();
 */
import type { Backend, ChangeEvent, Registration } from '../backends/contract.js';
import type { ProcessRegistry } from './service.js';

export interface CacheStats {
  hits: number;
  misses: number;
  /** Entries updated or dropped by watch events. */
  invalidations: number;
  /** Times the watch was re-established from scratch (compaction, stream failure). */
  resyncs: number;
  size: number;
}

interface Slot {
  entry: Registration | undefined;
  revision: number;
  at: number;
}

export class LookupCache {
  /** Called for every change event applied to the cache. */
  onChange?: (namespace: string, key: string, revision: number) => void;
  private readonly slots = new Map<string, Slot>();
  /** Highest event revision seen per key while a read of it is in flight. */
  private readonly pending = new Map<string, number>();
  private stopWatch: (() => void) | null = null;
  private closed = false;
  /** Bumped by every resync: a read begun before it must not be cached. */
  private epoch = 0;
  private readonly counters = { hits: 0, misses: 0, invalidations: 0, resyncs: 0 };

  private constructor(
    private readonly registry: ProcessRegistry,
    private readonly backend: Backend,
    readonly ttlMs: number,
  ) {}

  /** Start watching (when the backend has a feed); the cache fills lazily on lookups. */
  static async open(registry: ProcessRegistry, opts: { ttlMs?: number } = {}): Promise<LookupCache> {
    const cache = new LookupCache(registry, registry.backend, opts.ttlMs ?? 30_000);
    if (cache.coherent) await cache.watchFrom(await registry.backend.currentRevision!());
    return cache;
  }

  /** Kept coherent by a change feed (else only the TTL and this service's writes bound staleness). */
  get coherent(): boolean {
    return !!this.backend.watch && !!this.backend.currentRevision;
  }

  /** Drop one key (a write through this service). */
  invalidate(namespace: string, key: string): void {
    const id = `${namespace}\u0000${key}`;
    if (this.slots.delete(id)) this.counters.invalidations++;
    if (this.pending.has(id)) this.pending.set(id, Number.MAX_SAFE_INTEGER);
  }

  /** The live entry for `key` (from the cache when fresh), or undefined. */
  async lookup(key: string, opts: { namespace?: string } = {}): Promise<Registration | undefined> {
    const namespace = opts.namespace ?? this.registry.namespace;
    const id = `${namespace}\u0000${key}`;
    const slot = this.slots.get(id);
    if (slot && Date.now() - slot.at < this.ttlMs) {
      if (!slot.entry || this.registry.isAlive(slot.entry)) {
        this.counters.hits++;
        return slot.entry;
      }
      this.slots.delete(id);
      return this.registry.lookupUncached(key, { namespace }); // dead: the service removes it
    }
    this.counters.misses++;
    if (!this.pending.has(id)) this.pending.set(id, 0);
    const epoch = this.epoch;
    try {
      const { entry, revision } = this.backend.lookupAt
        ? await this.backend.lookupAt(namespace, key)
        : { entry: await this.registry.lookupUncached(key, { namespace }), revision: 0 };
      const seen = this.pending.get(id) ?? 0;
      // An event newer than this read arrived meanwhile: the read is stale, do not cache it.
      if (seen <= revision && epoch === this.epoch && !this.closed)
        this.slots.set(id, { entry, revision, at: Date.now() });
      if (entry && !this.registry.isAlive(entry)) {
        this.slots.delete(id);
        return await this.registry.lookupUncached(key, { namespace });
      }
      return entry;
    } finally {
      this.pending.delete(id);
    }
  }

  stats(): CacheStats {
    return { ...this.counters, size: this.slots.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopWatch?.();
    this.stopWatch = null;
    this.slots.clear();
  }

  private apply(e: ChangeEvent): void {
    const id = `${e.namespace}\u0000${e.key}`;
    if (this.pending.has(id)) this.pending.set(id, Math.max(this.pending.get(id)!, e.revision));
    const slot = this.slots.get(id);
    if (slot && slot.revision < e.revision) {
      if (e.type === 'put') this.slots.set(id, { entry: e.entry, revision: e.revision, at: Date.now() });
      else this.slots.delete(id);
      this.counters.invalidations++;
    }
    this.onChange?.(e.namespace, e.key, e.revision);
  }

  private async watchFrom(revision: number): Promise<void> {
    this.stopWatch = await this.backend.watch!(
      { sinceRevision: revision },
      (e) => this.apply(e),
      () => void this.resync(),
    );
  }

  /** Drop everything and watch again from the current revision. */
  private async resync(): Promise<void> {
    if (this.closed) return;
    this.stopWatch?.();
    this.epoch++;
    this.slots.clear();
    this.counters.resyncs++;
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.watchFrom(await this.backend.currentRevision!());
        return;
      } catch {
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}
