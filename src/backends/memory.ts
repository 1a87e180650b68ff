/**
 * `memory:` — in-process maps (the seed's ETS backend). Synchronous, with a change feed.
 */
import {
  type Backend,
  type BackendContext,
  type BulkResult,
  type Capabilities,
  type ChangeEvent,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  type ListOptions,
  type Meta,
  type Page,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  statusFromDeadShare,
  type UnregisterCondition,
  type UpdateOptions,
  CompactedError,
} from './contract.js';
import { compareKeys } from '../core/keys.js';
import { matchesWhere, mergePatch } from '../core/meta.js';
import { rolledBack } from '../core/bulk.js';

export const MEMORY_BACKEND = 'memory';

export interface MemoryOptions {
  /** Keep at most this many change events for `watch` resumption (default 10,000). */
  feedRetention?: number;
}

export function createMemoryBackend(_location: string, opts: MemoryOptions, ctx: BackendContext): Backend {
  return new MemoryBackend(opts, ctx);
}

class MemoryBackend implements Backend {
  readonly name = MEMORY_BACKEND;
  readonly url = 'memory:';
  readonly capabilities: Capabilities = {
    ...defaultCapabilities,
    synchronous: true,
    bulkRegister: true,
    watch: true,
    transactions: true,
  };

  private readonly spaces = new Map<string, Space>();
  private closed = false;
  private revision = 0;
  // The retained change feed as two parallel arrays (no event object per write): the revision,
  // negative for a delete, and the entry written (put) or removed (delete).
  private readonly feedRevs: number[] = [];
  private readonly feedEntries: Registration[] = [];
  private readonly listeners = new Set<{ ns?: string; fn: (e: ChangeEvent) => void }>();
  private readonly retention: number;
  private journal: Array<() => void> | null = null;
  private lastNs: string | undefined;
  private lastCleanup: number | null = null;
  private lastSpace: Space | undefined;

  constructor(
    opts: MemoryOptions,
    private readonly ctx: BackendContext,
  ) {
    this.retention = opts.feedRetention ?? 10_000;
  }

  register(entry: Registration, opts: RegisterOptions): RegisterOutcome {
    // The one-slot namespace cache of lookup also serves bursts of writes (bulk) in one namespace.
    let space = entry.namespace === this.lastNs && !this.closed ? this.lastSpace : undefined;
    if (!space) {
      space = this.space(entry.namespace, true)!;
      this.lastNs = entry.namespace;
      this.lastSpace = space;
    }
    const existing = space.map.get(entry.key);
    if (existing && !opts.replaceIf(existing)) return { ok: false, holder: existing };
    this.put(space, entry, existing);
    return existing ? { ok: true, entry, replaced: existing } : { ok: true, entry };
  }

  lookup(namespace: string, key: string): Registration | undefined {
    if (this.closed) throw new ClosedError('the memory backend');
    // One-slot namespace cache: a burst of lookups is usually in one namespace.
    if (namespace !== this.lastNs) {
      this.lastNs = namespace;
      this.lastSpace = this.spaces.get(namespace);
    }
    return this.lastSpace?.map.get(key);
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition): boolean {
    const space = this.space(namespace, false);
    const existing = space?.map.get(key);
    if (!space || !existing || !matchesCond(existing, cond)) return false;
    this.remove(space, existing);
    return true;
  }

  list(namespace: string, opts: ListOptions): Page {
    const space = this.space(namespace, false);
    if (!space) return { items: [] };
    const keys = space.sorted();
    const limit = opts.limit ?? 1000;
    let i = opts.after === undefined ? 0 : upperBound(keys, opts.after);
    const items: Registration[] = [];
    for (; i < keys.length && items.length < limit; i++) {
      const e = space.entryAt(i);
      if (matchesWhere(e.meta, opts.where)) items.push(e);
    }
    return i < keys.length ? { items, next: items.at(-1)?.key ?? keys[i - 1] } : { items };
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions): Registration | undefined {
    const space = this.space(namespace, false);
    const existing = space?.map.get(key);
    if (!space || !existing) return undefined;
    const next: Registration = {
      ...existing,
      meta: opts.merge ? (mergePatch(existing.meta, meta) as Meta) : meta,
      updatedAt: Date.now(),
    };
    opts.validate?.(next.meta);
    this.put(space, next, existing);
    return next;
  }

  count(namespace?: string): number {
    this.check();
    if (namespace !== undefined) return this.spaces.get(namespace)?.map.size ?? 0;
    let n = 0;
    for (const s of this.spaces.values()) n += s.map.size;
    return n;
  }

  namespaces(): string[] {
    this.check();
    return [...this.spaces.keys()].filter((ns) => this.spaces.get(ns)!.map.size > 0).sort(compareKeys);
  }

  healthCheck(): HealthReport {
    this.check();
    let alive = 0;
    let dead = 0;
    let bytes = 0;
    for (const s of this.spaces.values()) {
      for (const e of s.map.values()) {
        if (this.ctx.isAlive(e)) alive++;
        else dead++;
        bytes += 160 + e.key.length * 2 + e.node.length * 2 + JSON.stringify(e.meta).length * 2;
      }
    }
    return {
      ...statusFromDeadShare(alive, dead),
      registrations: alive + dead,
      alive,
      dead,
      memoryBytes: bytes,
      lastCleanup: this.lastCleanup,
      namespaces: this.spaces.size,
      revision: this.revision,
    };
  }

  /** Record the time of a sweep (shown by health). */
  markCleanup(at: number): void {
    this.lastCleanup = at;
  }

  close(): void {
    this.closed = true;
    this.spaces.clear();
    this.lastNs = undefined;
    this.lastSpace = undefined;
    this.listeners.clear();
  }

  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): BulkResult[] {
    if (!opts.atomic) return entries.map((e) => this.register(e, opts));
    return this.transaction(() => {
      const results = entries.map((e) => this.register(e, opts));
      if (results.some((r) => !r.ok)) throw new AtomicAbort(rolledBack(results));
      return results;
    });
  }

  transaction<T>(fn: () => T): T {
    if (this.journal) return fn(); // nested: part of the outer transaction
    this.journal = [];
    try {
      const out = fn();
      this.journal = null;
      return out;
    } catch (e) {
      const undo = this.journal!;
      this.journal = null;
      for (const u of undo.reverse()) u();
      if (e instanceof AtomicAbort) return e.results as T;
      throw e;
    }
  }

  clearNamespace(namespace: string): number {
    const space = this.space(namespace, false);
    if (!space) return 0;
    const all = [...space.map.values()];
    for (const e of all) this.remove(space, e);
    return all.length;
  }

  watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): () => void {
    this.check();
    if (opts.sinceRevision !== undefined) {
      const first = this.feedRevs[0];
      const oldest = first !== undefined ? Math.abs(first) : this.revision + 1;
      if (opts.sinceRevision + 1 < oldest && opts.sinceRevision < this.revision) {
        onError?.(
          new CompactedError(
            `revision ${opts.sinceRevision} is compacted (oldest kept: ${oldest}): list again and watch from the current revision`,
          ),
        );
        return () => {};
      }
      for (const [i, rev] of this.feedRevs.entries()) {
        const e = this.feedEntries[i];
        if (e === undefined)
          throw new Error(`memory backend: change feed entry ${i} missing (revisions and entries out of step)`);
        if (Math.abs(rev) > opts.sinceRevision && (!opts.namespace || e.namespace === opts.namespace))
          onEvent(changeEvent(rev, e));
      }
    }
    const l = { ns: opts.namespace, fn: onEvent };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  lookupAt(namespace: string, key: string): { entry: Registration | undefined; revision: number } {
    return { entry: this.lookup(namespace, key), revision: this.revision };
  }

  /** The current revision of the change feed. */
  currentRevision(): number {
    return this.revision;
  }

  // --- helpers ---------------------------------------------------------------------------------

  private check(): void {
    if (this.closed) throw new ClosedError('the memory backend');
  }

  private space(ns: string, create: boolean): Space | undefined {
    this.check();
    let s = this.spaces.get(ns);
    if (!s && create) {
      s = new Space();
      this.spaces.set(ns, s);
      this.lastNs = undefined;
    }
    return s;
  }

  private put(space: Space, entry: Registration, existing: Registration | undefined): void {
    space.map.set(entry.key, entry);
    if (!existing) space.dirty = true;
    if (this.journal) {
      this.journal.push(
        existing
          ? () => space.map.set(existing.key, existing)
          : () => {
              space.map.delete(entry.key);
              space.dirty = true;
            },
      );
    }
    this.emit(1, entry);
  }

  private remove(space: Space, existing: Registration): void {
    space.map.delete(existing.key);
    space.dirty = true;
    if (this.journal)
      this.journal.push(() => {
        space.map.set(existing.key, existing);
        space.dirty = true;
      });
    this.emit(-1, existing);
  }

  /** Record a write: `sign` 1 = put of `e`, -1 = delete of `e`. */
  private emit(sign: 1 | -1, e: Registration): void {
    const rev = sign * ++this.revision;
    if (this.listeners.size === 0 && this.retention === 0) return;
    this.feedRevs.push(rev);
    this.feedEntries.push(e);
    // Trim in chunks (amortised O(1) per event): keeps between `retention` and twice that many.
    if (this.feedRevs.length > this.retention * 2) {
      const drop = this.feedRevs.length - this.retention;
      this.feedRevs.splice(0, drop);
      this.feedEntries.splice(0, drop);
    }
    if (this.listeners.size === 0) return;
    const ev = changeEvent(rev, e);
    for (const l of this.listeners) if (!l.ns || l.ns === ev.namespace) l.fn(ev);
  }
}

class Space {
  readonly map = new Map<string, Registration>();
  dirty = true;
  private keys: string[] = [];
  sorted(): string[] {
    if (this.dirty) {
      this.keys = [...this.map.keys()].sort(compareKeys);
      this.dirty = false;
    }
    return this.keys;
  }
  /** The entry of the `i`-th key in `sorted()` order (a miss: the key index and the map diverged). */
  entryAt(i: number): Registration {
    const key = this.sorted()[i];
    const e = key === undefined ? undefined : this.map.get(key);
    if (e === undefined) throw new Error(`memory backend: no entry at sorted position ${i}`);
    return e;
  }
}

class AtomicAbort extends Error {
  constructor(readonly results: BulkResult[]) {
    super('atomic bulk register aborted');
  }
}

/** The change event of a feed slot (revision negative for a delete). */
function changeEvent(rev: number, e: Registration): ChangeEvent {
  return rev > 0
    ? { revision: rev, type: 'put', namespace: e.namespace, key: e.key, entry: e }
    : { revision: -rev, type: 'delete', namespace: e.namespace, key: e.key };
}

/** Does `e` still match an unregister condition (compare-and-delete)? */
export function matchesCond(e: Registration, cond?: UnregisterCondition): boolean {
  if (!cond) return true;
  if (cond.pid !== undefined && e.pid !== cond.pid) return false;
  if (cond.registeredAt !== undefined && e.registeredAt !== cond.registeredAt) return false;
  if (cond.node !== undefined && e.node !== cond.node) return false;
  return true;
}

/** First index whose key sorts after `k`. */
function upperBound(keys: string[], k: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1; // 0 <= lo <= mid < hi <= keys.length: in range
    if (compareKeys(keys[mid]!, k) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
