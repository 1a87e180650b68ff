/**
 * `memory:` — in-process maps (the seed's ETS backend). Synchronous, with a change feed.
 *
 * Per namespace: a Map for lookups, a B-tree of the same entries in key order for listings (kept
 * on every write, so a listing after a write never sorts the store), and the metadata index: field
 * → value → B-tree of the entries holding it (docs/indexes.md).
 */
import BTreeModule from 'sorted-btree';
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
  type ListPlan,
  type Meta,
  type Page,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  statusFromDeadShare,
  type UnregisterCondition,
  type UpdateOptions,
} from './contract.js';
import { compareKeys } from '../core/keys.js';
import { matchesWhere, mergePatch, scalarText } from '../core/meta.js';
import { rolledBack } from '../core/bulk.js';
import { compactedError } from './feed-error.js';
import { DEFAULT_INDEX_FIELDS, indexable, MAX_INDEX_VALUE, parseIndexFields } from './index-fields.js';

// sorted-btree is CommonJS with `exports.default`: under NodeNext the class is the default's default.
const BTree = BTreeModule.default;
type BTree<K, V> = InstanceType<typeof BTree<K, V>>;

export const MEMORY_BACKEND = 'memory';

export interface MemoryOptions {
  /** Keep at most this many change events for `watch` resumption (default 10,000). */
  feedRetention?: number;
  /** Metadata fields in the index (docs/indexes.md; default DEFAULT_INDEX_FIELDS). */
  indexFields?: string[] | string;
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
    findByMetadata: true,
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
  private readonly indexFields: ReadonlySet<string>;

  constructor(
    opts: MemoryOptions,
    private readonly ctx: BackendContext,
  ) {
    this.retention = opts.feedRetention ?? 10_000;
    this.indexFields = new Set(parseIndexFields(opts.indexFields) ?? DEFAULT_INDEX_FIELDS);
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
    const term = opts.where?.find(([f, v]) => indexable(this.indexFields, f, v));
    const plan: ListPlan | undefined = term
      ? { method: 'index', field: term[0], scanned: 0 }
      : opts.where?.length
        ? { method: 'scan', scanned: 0 }
        : undefined;
    const done = (p: Page): Page => (plan ? { ...p, plan } : p);
    const tree = term ? space?.terms.get(term[0])?.get(term[1]) : space?.tree;
    if (!tree) return done({ items: [] });
    const limit = opts.limit ?? 1000;
    const items: Registration[] = [];
    for (const [k, e] of tree.entries(opts.after)) {
      if (k === opts.after) continue;
      if (items.length === limit) return done({ items, next: k && items[limit - 1]!.key });
      if (plan) plan.scanned++;
      if (matchesWhere(e.meta, opts.where)) items.push(e);
    }
    return done({ items });
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
        onError?.(compactedError(opts.sinceRevision, oldest));
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
      s = new Space(this.indexFields);
      this.spaces.set(ns, s);
      this.lastNs = undefined;
    }
    return s;
  }

  private put(space: Space, entry: Registration, existing: Registration | undefined): void {
    space.set(entry, existing);
    if (this.journal) this.journal.push(existing ? () => space.set(existing, entry) : () => space.delete(entry));
    this.emit(1, entry);
  }

  private remove(space: Space, existing: Registration): void {
    space.delete(existing);
    if (this.journal) this.journal.push(() => space.set(existing, undefined));
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

/** One namespace: a Map for lookups, a B-tree in key order for listings, the metadata index. */
class Space {
  readonly map = new Map<string, Registration>();
  readonly tree = new BTree<string, Registration>(undefined, utf8Order);
  /** field → value text → the entries holding it, in key order. */
  readonly terms = new Map<string, Map<string, BTree<string, Registration>>>();

  constructor(private readonly fields: ReadonlySet<string>) {}

  /** Store `e` (replacing `prev`, the entry now under its key, if any). */
  set(e: Registration, prev: Registration | undefined): void {
    this.map.set(e.key, e);
    this.tree.set(e.key, e);
    if (prev) this.index(prev, false);
    this.index(e, true);
  }

  delete(e: Registration): void {
    this.map.delete(e.key);
    this.tree.delete(e.key);
    this.index(e, false);
  }

  /** Add (or remove) `e` under each indexed value of its metadata: one per list element. */
  private index(e: Registration, add: boolean): void {
    for (const field of this.fields) {
      if (!Object.hasOwn(e.meta, field)) continue;
      const v = e.meta[field];
      for (const x of Array.isArray(v) ? v : [v]) {
        if (x !== null && typeof x === 'object') continue; // objects and nested lists: queries for them scan
        const text = scalarText(x);
        if (text === undefined || Buffer.byteLength(text) > MAX_INDEX_VALUE) continue;
        let byValue = this.terms.get(field);
        if (!byValue) this.terms.set(field, (byValue = new Map()));
        let keys = byValue.get(text);
        if (add) {
          if (!keys) byValue.set(text, (keys = new BTree(undefined, utf8Order)));
          keys.set(e.key, e);
        } else if (keys?.delete(e.key) && keys.size === 0) byValue.delete(text);
      }
    }
  }
}

/**
 * UTF-8 byte order (what `compareKeys` says, SQLite and etcd use) on UTF-16 code units, without
 * allocating: the orders differ only where a surrogate meets a unit of U+E000–U+FFFF, which UTF-8
 * puts below the 4-byte characters the surrogates encode.
 */
function utf8Order(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    }
    return x - y;
  }
  return a.length - b.length;
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
