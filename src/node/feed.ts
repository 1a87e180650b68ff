/**
 * A change feed for backends without the `watch` capability (sqlite): a decorator that records
 * every mutation going through it with a monotonically increasing revision, keeps the last
 * `retention` events for resumption, and serves `watch` like the memory backend does.
 *
 * It sees the mutations of the process that holds it (the node): writes made to the same store by
 * other processes do not appear (a node owns its store). `processes`/`removeProcesses` are not
 * passed through, so sweeps remove entries key by key and every removal is on the feed.
 */
import type {
  Backend,
  BulkResult,
  ChangeEvent,
  ListOptions,
  MaybePromise,
  Meta,
  RegisterOptions,
  Registration,
  UnregisterCondition,
  UpdateOptions,
} from '../backends/contract.js';
import { CompactedError, then } from '../backends/contract.js';

export interface FeedOptions {
  /** Events kept for `since` resumption (default 10,000). */
  retention?: number;
}

/** Wrap `backend` so it has a change feed; returns it unchanged when it has one already. */
export function withChangeFeed(backend: Backend, opts: FeedOptions = {}): Backend {
  return backend.capabilities.watch ? backend : new FeedBackend(backend, opts.retention ?? 10_000);
}

/** The current revision of a backend's feed, when it tells: a Promise on a networked store (etcd). */
export function currentRevision(backend: Backend): MaybePromise<number> | undefined {
  const f = backend.currentRevision;
  return typeof f === 'function' ? f.call(backend) : undefined;
}

class FeedBackend implements Backend {
  readonly name: string;
  readonly url: string;
  readonly capabilities;
  private revision = 0;
  private readonly feed: ChangeEvent[] = [];
  private head = 0;
  private readonly listeners = new Set<{ ns?: string; fn: (e: ChangeEvent) => void }>();
  /** Events of an open transaction, published on commit. */
  private pending: ChangeEvent[] | null = null;

  constructor(
    private readonly inner: Backend,
    private readonly retention: number,
  ) {
    this.name = inner.name;
    this.url = inner.url;
    this.capabilities = { ...inner.capabilities, watch: true };
    if (inner.bulkRegister)
      this.bulkRegister = (entries, o) => then(inner.bulkRegister!(entries, o), (rs) => this.afterBulk(rs, !!o.atomic));
    if (inner.digest) this.digest = (ns, b) => inner.digest!(ns, b);
    if (inner.markCleanup) this.markCleanup = (at) => inner.markCleanup!(at);
    if (inner.clearNamespace) this.clearNamespace = (ns) => this.clear(ns);
    if (inner.transaction) {
      this.transaction = <T>(fn: () => T): T => {
        if (this.pending) return inner.transaction!(fn);
        this.pending = [];
        let events: ChangeEvent[] = [];
        try {
          const out = inner.transaction!(fn);
          events = this.pending;
          return out;
        } finally {
          this.pending = null;
          for (const e of events) this.publish(e);
        }
      };
    }
  }

  bulkRegister?: Backend['bulkRegister'];
  digest?: Backend['digest'];
  markCleanup?: Backend['markCleanup'];
  clearNamespace?: Backend['clearNamespace'];
  transaction?: Backend['transaction'];

  register(entry: Registration, opts: RegisterOptions) {
    return then(this.inner.register(entry, opts), (r) => {
      if (r.ok) this.emit('put', r.entry.namespace, r.entry.key, r.entry);
      return r;
    });
  }

  lookup(namespace: string, key: string) {
    return this.inner.lookup(namespace, key);
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition) {
    return then(this.inner.unregister(namespace, key, cond), (removed) => {
      if (removed) this.emit('delete', namespace, key);
      return removed;
    });
  }

  list(namespace: string, opts: ListOptions) {
    return this.inner.list(namespace, opts);
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions) {
    return then(this.inner.updateMetadata(namespace, key, meta, opts), (e) => {
      if (e) this.emit('put', namespace, key, e);
      return e;
    });
  }

  count(namespace?: string) {
    return this.inner.count(namespace);
  }

  namespaces() {
    return this.inner.namespaces();
  }

  healthCheck() {
    return then(this.inner.healthCheck(), (h) => ({ ...h, revision: this.revision }));
  }

  close() {
    this.listeners.clear();
    return this.inner.close();
  }

  watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): () => void {
    if (opts.sinceRevision !== undefined && opts.sinceRevision < this.revision) {
      const oldest = this.feed[this.head]?.revision ?? this.revision + 1;
      if (opts.sinceRevision + 1 < oldest) {
        onError?.(
          new CompactedError(
            `revision ${opts.sinceRevision} is compacted (oldest kept: ${oldest}): list again and watch from the current revision`,
          ),
        );
        return () => {};
      }
      // By index, not over a copy: an event appended while replaying is replayed too.
      for (let i = this.head; i < this.feed.length; i++) {
        const e = this.feed[i];
        if (e === undefined) continue; // i < length: never, the feed has no holes
        if (e.revision > opts.sinceRevision && (!opts.namespace || e.namespace === opts.namespace)) onEvent(e);
      }
    }
    const l = { ns: opts.namespace, fn: onEvent };
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  currentRevision(): number {
    return this.revision;
  }

  // --- helpers ---------------------------------------------------------------------------------

  private afterBulk(rs: BulkResult[], atomic: boolean): BulkResult[] {
    if (atomic && rs.some((r) => !r.ok)) return rs; // rolled back: nothing changed
    for (const r of rs) if (r.ok) this.emit('put', r.entry.namespace, r.entry.key, r.entry);
    return rs;
  }

  /**
   * Clear a namespace, publishing a delete per key (keys are listed first). Synchronous for a
   * synchronous backend, so it still works inside `transaction` (restore --mode replace).
   */
  private clear(namespace: string) {
    const keys: string[] = [];
    const done = (n: number) => {
      for (const k of keys) this.emit('delete', namespace, k);
      return n;
    };
    const page = (after?: string): ReturnType<Backend['count']> =>
      then(this.inner.list(namespace, { after, limit: 1000 }), (p) => {
        for (const e of p.items) keys.push(e.key);
        return p.next ? page(p.next) : then(this.inner.clearNamespace!(namespace), done);
      });
    return page();
  }

  private emit(type: 'put' | 'delete', namespace: string, key: string, entry?: Registration): void {
    const e: ChangeEvent = entry ? { revision: 0, type, namespace, key, entry } : { revision: 0, type, namespace, key };
    if (this.pending) this.pending.push(e);
    else this.publish(e);
  }

  private publish(e: ChangeEvent): void {
    e.revision = ++this.revision;
    this.feed.push(e);
    // Drop old events in chunks (amortised O(1) per event, no per-event array shift).
    if (this.feed.length - this.head > this.retention) this.head++;
    if (this.head > 4096 && this.head * 2 > this.feed.length) {
      this.feed.splice(0, this.head);
      this.head = 0;
    }
    for (const l of this.listeners) if (!l.ns || l.ns === e.namespace) l.fn(e);
  }
}
