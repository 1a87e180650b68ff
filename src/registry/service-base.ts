/**
 * The store-facing half of the service (`ProcessRegistry`, src/registry/service.ts, extends it):
 * what reads or repairs a whole store, and the backend's pass-throughs. Everything above the
 * service that needs more than register/lookup/list (dump and restore, the node, the migrations'
 * verify and copy, the `stats` and `watch` commands) asks here, never the backend; the fallbacks
 * for optional contract methods are in src/registry/service-store.ts, once.
 */
import {
  type Backend,
  type BucketDigests,
  type ChangeEvent,
  ClosedError,
  type CompactReport,
  type InspectReport,
  InvalidInputError,
  type IntegrityReport,
  type Page,
  type Registration,
  type RestoreApplied,
  type RestorePlan,
  UnreachableError,
} from '../backends/contract.js';
import type { LookupCache } from './lookup-cache.js';
import type { CallOptions, ListCallOptions } from './service-types.js';
import { validateNamespace } from './validate.js';
import {
  clearNamespace,
  digestNamespace,
  type OffThreadDigester,
  overwriteBatch,
  pages,
  type PagesOptions,
  restoreInto,
} from './service-store.js';

/** A running node's admin calls, as the backend that talks to it makes them. */
export type NodeAdmin = Required<Pick<Backend, 'nodeStatus' | 'switchNode'>>;

export abstract class ServiceBase {
  readonly backend: Backend;
  readonly nodeName: string;
  readonly namespace: string;
  protected closed = false;
  protected cache: Promise<LookupCache> | null = null;

  protected constructor(backend: Backend, nodeName: string, namespace: string) {
    this.backend = backend;
    this.nodeName = nodeName;
    this.namespace = namespace;
  }

  /** Is this stored registration alive? (ProcessRegistry: judged here for this node name.) */
  abstract isAlive(e: Registration): boolean;

  /** One page of live entries ordered by key (ProcessRegistry.list). */
  abstract list(opts?: ListCallOptions): Promise<Page>;

  /** Namespaces holding entries. */
  async namespaces(): Promise<string[]> {
    this.check();
    return this.backend.namespaces();
  }

  /**
   * Stored registrations, dead ones included, in a namespace (every namespace without one): a
   * read-only count, nothing swept (a migration sizing its digest buckets or its progress).
   */
  async storedCount(namespace?: string): Promise<number> {
    this.check();
    return this.backend.count(namespace === undefined ? undefined : validateNamespace(namespace));
  }

  // --- the store, for layers that read or repair a whole namespace --------------------------------

  /**
   * The one cursor loop: pages of a namespace in key order from `after`, of at most `pageSize`
   * entries, `limit` entries in all (the last page then carries `next` when more follow). Live
   * entries (lazy cleanup of dead ones, as list does), or with `stored` every stored entry, dead
   * ones included, for callers that judge themselves.
   */
  async *pages(opts: CallOptions & PagesOptions & { limit?: number; stored?: boolean } = {}): AsyncGenerator<Page> {
    this.check();
    const namespace = this.ns(opts);
    if (opts.stored) return yield* pages(this.backend, namespace, opts);
    const pageSize = opts.pageSize ?? 1000;
    let after = opts.after;
    let left = opts.limit ?? Infinity;
    for (; left > 0;) {
      const page = await this.list({ namespace, after, limit: Math.min(pageSize, left), where: opts.where });
      left -= page.items.length;
      yield page;
      if (!page.next || left <= 0) return;
      after = page.next;
    }
  }

  /**
   * Every live entry of a namespace in key order, read-only: the stored pages judged by this
   * service's liveness, a dead entry skipped but not removed. For reads that must not write
   * (verify, copy's source, a plan or a --dry-run).
   */
  async *entriesReadOnly(opts: CallOptions & PagesOptions = {}): AsyncGenerator<Registration> {
    for await (const page of this.pages({ ...opts, stored: true }))
      for (const e of page.items) if (this.isAlive(e)) yield e;
  }

  /** Per-bucket digests of a namespace's live entries: where the data lives when the backend can, else listed. */
  async digest(namespace: string, buckets: number, opts: { strict?: boolean } = {}): Promise<BucketDigests> {
    return (await this.digestWithSource(namespace, buckets, opts)).d;
  }

  /** `digest`, saying how it was computed: by the backend where its data lives, or over the listing. */
  async digestWithSource(
    namespace: string,
    buckets: number,
    opts: { strict?: boolean } = {},
  ): Promise<{ d: BucketDigests; how: 'backend' | 'listing' }> {
    this.check();
    return digestNamespace(this.backend, validateNamespace(namespace), buckets, (e) => this.isAlive(e), opts.strict);
  }

  /**
   * The backend's digester of several namespaces off this thread (SQLite: a worker on its own
   * connection), when it has one and the store is worth it; undefined otherwise.
   */
  offThreadDigests(): OffThreadDigester | undefined {
    this.check();
    if (!this.backend.capabilities.digest) return undefined;
    return this.backend.offThreadDigests?.();
  }

  /** Apply a checked dump all or nothing where the backend can (src/registry/dump.ts builds the plan). */
  async restorePlan(plan: RestorePlan): Promise<RestoreApplied> {
    this.check();
    try {
      return await restoreInto(this.backend, plan);
    } finally {
      if (this.cache) await this.resetCache();
    }
  }

  /**
   * Write complete entries as they are, replacing whatever holds their keys, live or not (a copy
   * or a repair: the source is the truth). Nothing is validated or judged: the entries come from
   * another store. Resolves once every entry is written; the first refusal is thrown.
   */
  async overwrite(batch: Registration[]): Promise<void> {
    this.check();
    try {
      await overwriteBatch(this.backend, batch);
    } finally {
      for (const e of batch) this.touched(e.namespace, e.key);
    }
  }

  /** What the backend can do (src/backends/contract.ts Capabilities). */
  get capabilities() {
    return this.backend.capabilities;
  }

  /** The backend's URL. */
  get url(): string {
    return this.backend.url;
  }

  /** Remove every entry of a namespace; the number removed. */
  async clearNamespace(namespace: string): Promise<number> {
    this.check();
    const ns = validateNamespace(namespace);
    const n = await clearNamespace(this.backend, ns);
    if (this.cache) await this.resetCache();
    return n;
  }

  /**
   * Follow the backend's change feed (InvalidInputError when it has none); resolves to `stop` once
   * the watch is established.
   */
  async watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError: (err: Error) => void,
  ): Promise<() => void> {
    this.check();
    if (!this.backend.watch)
      throw new InvalidInputError(
        `the ${this.backend.name} backend has no change feed: watch a node (registry serve, then -b http://…) or etcd`,
      );
    return this.backend.watch(opts, onEvent, onError);
  }

  /** The change feed's current revision, when the backend tells. */
  async currentRevision(): Promise<number | undefined> {
    return this.backend.currentRevision ? this.backend.currentRevision() : undefined;
  }

  /** The backend's health report. */
  async healthCheck() {
    this.check();
    return this.backend.healthCheck();
  }

  /**
   * Compact the store after a bulk change where the backend can (`compact?()`: SQLite's ANALYZE,
   * PRAGMA optimize and VACUUM); undefined when it cannot.
   */
  async compact(): Promise<CompactReport | undefined> {
    this.check();
    return this.backend.compact?.();
  }

  /** The store's own anomaly report (`inspect?()`: legacy), undefined when the backend has none. */
  async inspect(): Promise<InspectReport | undefined> {
    this.check();
    return this.backend.inspect?.();
  }

  /**
   * The backend's raw effective view (`rawEntries?()`: legacy, read straight from its tables),
   * undefined when it has none: what `migrate wrap` proves the service's view equal to.
   */
  rawEntries(): Iterable<Registration> | undefined {
    this.check();
    return this.backend.rawEntries?.();
  }

  /**
   * The admin calls of the node this service talks to (`remote` capability: its own status, its
   * runtime switch); undefined when the backend is not a node.
   */
  node(): NodeAdmin | undefined {
    this.check();
    const b = this.backend;
    if (!b.capabilities.remote || !b.nodeStatus || !b.switchNode) return undefined;
    return { nodeStatus: b.nodeStatus.bind(b), switchNode: b.switchNode.bind(b) };
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
        { recoverable: false, details: { problems: r.problems, damaged: true } },
      );
    return r;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // --- helpers -----------------------------------------------------------------------------------

  protected ns(opts: CallOptions): string {
    return opts.namespace === undefined ? this.namespace : validateNamespace(opts.namespace);
  }

  protected check(): void {
    if (this.closed) throw new ClosedError('this registry');
  }

  /** Many keys changed at once (a namespace cleared): start the cache over. */
  protected async resetCache(): Promise<void> {
    const c = this.cache;
    this.cache = null;
    await (await c?.catch(() => undefined))?.close();
  }

  /** A write through this service: drop the key from the lookup cache. */
  protected touched(namespace: string, key: string): void {
    if (this.cache)
      void this.cache.then(
        (c) => c.invalidate(namespace, key),
        () => undefined,
      );
  }

  /** Compare-and-delete a dead entry (a fresh registration of the key is left alone). */
  protected removeDead(e: Registration) {
    return this.backend.unregister(e.namespace, e.key, { pid: e.pid, registeredAt: e.registeredAt, node: e.node });
  }
}
