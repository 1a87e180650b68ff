/**
 * Runtime backend switching of a node (design §3): the node moves to another backend — of any kind:
 * memory, SQLite, etcd — with no lost and no failed operation, and a write pause that does not grow
 * with the store.
 *
 *   dual write → backfill → compare → catch up the delta → pause: catch up + verify the last delta → flip
 *
 * `SwitchableBackend` sits between the node's service and its store. While a switch runs, every
 * mutation applied to the current store is mirrored to the target with its outcome (dual write),
 * and the keys it touched join a delta set when it completes. The backfill copies the current store
 * into the target without overwriting what dual writes put there; a walk of both stores in key order
 * adds every differing key to the delta; catch-up rounds fix the delta's keys while writes flow.
 * Then new mutations wait (delayed, never failed) while in-flight ones finish, the last delta —
 * bounded by the writes in flight, not by the store — is caught up and digest-verified, and the
 * switchable flips (src/node/switch-copy.ts). Change-feed subscribers move over at the flip with
 * revisions continuing where the old feed stopped; a resume from before the flip is refused as
 * compacted (list again), as any feed does for history it no longer keeps.
 *
 * The switchable always presents an asynchronous face (`synchronous: false`): the service above
 * takes its per-key locks and asynchronous paths whatever store is current, so a switch between a
 * synchronous store (memory, SQLite) and an asynchronous one (etcd) needs no restart. Only the
 * `remote` kind (another node) must match: it decides whether the service judges liveness itself.
 */
import {
  type Backend,
  type Capabilities,
  CompactedError,
  type ChangeEvent,
  ConflictError,
  InvalidInputError,
  type ListOptions,
  RegistryError,
  type MaybePromise,
  type Meta,
  type RegisterOptions,
  type Registration,
  type RestoreApplied,
  type RestorePlan,
  then,
  type UnregisterCondition,
  type UpdateOptions,
} from '../backends/contract.js';
import { restoreInto } from '../registry/dump.js';
import { currentRevision } from './feed.js';
import { roundMs } from '../core/time.js';
import {
  always,
  backfill,
  catchUp,
  clearByKey,
  compareAll,
  Delta,
  digestOf,
  registerEach,
  verifyDelta,
  yieldLoop,
} from './switch-copy.js';

export { SWITCH_BUCKETS } from './switch-copy.js';
/** Catch-up rounds while writes flow stop once a delta is this small (the pause catches up the rest). */
const PAUSE_DELTA = 64;
const MAX_ROUNDS = 16;
/** How long the feed waits at most for an asynchronous old store's watch to deliver its last events. */
const FEED_DRAIN_MS = 5000;

/** What a finished switch reports. */
export interface SwitchReport {
  from: string;
  to: string;
  /** Entries copied by the backfill. */
  copied: number;
  /** Keys fixed after the backfill (changed while it ran), by the catch-up rounds and the pause. */
  repaired: number;
  /** Keys that differed when both stores were compared while writes flowed. */
  differing: number;
  /** Catch-up rounds run while writes flowed. */
  rounds: number;
  /** Dual writes the target refused (their keys were caught up from the old store). */
  mirrorFailures: number;
  /** Keys caught up and verified during the pause (bounded by the writes in flight). */
  delta: number;
  /** Entries of the old store compared with the target, and their digest per namespace (taken while writes flowed). */
  entries: number;
  namespaces: Record<string, { count: number; digest: string }>;
  /** How long writes waited at the flip. */
  pausedMs: number;
  durationMs: number;
  /** Feed revision at which the new backend took over. */
  revision: number;
}

export type OpenTarget = (url: string, opts: Record<string, unknown>) => Promise<Backend>;

interface Sub {
  namespace?: string;
  onEvent: (e: ChangeEvent) => void;
  onError?: (err: Error) => void;
  stop: () => void;
  /** Events of the new store held back while the old store's watch delivers its last ones. */
  held?: ChangeEvent[];
}

export class SwitchableBackend implements Backend {
  private current: Backend;
  private target: Backend | null = null;
  /** Keys written while a switch runs (added when each write completes). */
  private delta: Delta | null = null;
  private mirrorFailures = 0;
  /** Resolves when writes may go on; set while the flip runs. */
  private gate: Promise<void> | null = null;
  private inFlight = 0;
  private drained: (() => void) | null = null;
  private offset = 0;
  private flipPoint = 0;
  private readonly subs = new Set<Sub>();
  private switching: string | null = null;
  private readonly remote: boolean;
  readonly history: SwitchReport[] = [];

  constructor(
    initial: Backend,
    private readonly openTarget: OpenTarget,
  ) {
    this.current = initial;
    this.remote = initial.capabilities.remote;
  }

  /**
   * Always asynchronous (the service takes its locks and asynchronous paths whatever store is
   * current), `remote` fixed at construction (the service decides liveness from it once); the rest
   * follows the current store.
   */
  get capabilities(): Capabilities {
    return {
      ...this.current.capabilities,
      synchronous: false,
      remote: this.remote,
      watch: !!this.current.watch,
      bulkRegister: true,
      digest: true,
      transactions: false,
    };
  }

  get name(): string {
    return this.current.name;
  }

  get url(): string {
    return this.current.url;
  }

  /** The URL of the target while a switch runs. */
  get switchingTo(): string | null {
    return this.switching;
  }

  // --- reads: the current store ----------------------------------------------------------------
  // Answered as Promises whatever the current store is, as `synchronous: false` promises (the
  // conformance suite checks the flag against the answers).

  async lookup(namespace: string, key: string) {
    return this.current.lookup(namespace, key);
  }

  async list(namespace: string, opts: ListOptions) {
    return this.current.list(namespace, opts);
  }

  async count(namespace?: string) {
    return this.current.count(namespace);
  }

  async namespaces() {
    return this.current.namespaces();
  }

  healthCheck() {
    return then(this.current.healthCheck(), (h) => (this.switching ? { ...h, switchingTo: this.switching } : h));
  }

  digest(namespace: string, buckets: number) {
    const b = this.current;
    if (b.digest) return b.digest(namespace, buckets);
    return digestOf(b, namespace, buckets);
  }

  markCleanup(at: number) {
    return this.current.markCleanup?.(at);
  }

  /** The feed revision: a number for an in-process feed, a Promise for a networked store's. */
  currentRevision(): MaybePromise<number> {
    return then(currentRevision(this.current) ?? 0, (r) => r + this.offset);
  }

  // --- writes: the current store, mirrored to the target during a switch ----------------------

  register(entry: Registration, opts: RegisterOptions) {
    return this.write(
      (d) => d.add(entry.namespace, entry.key),
      () => this.current.register(entry, opts),
      (r, t) => (r.ok ? then(t.register(r.entry, always), () => undefined) : undefined),
    );
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition) {
    return this.write(
      (d) => d.add(namespace, key),
      () => this.current.unregister(namespace, key, cond),
      (removed, t) => (removed ? then(t.unregister(namespace, key), () => undefined) : undefined),
    );
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions) {
    return this.write(
      (d) => d.add(namespace, key),
      () => this.current.updateMetadata(namespace, key, meta, opts),
      (e, t) => (e ? then(t.register(e, always), () => undefined) : undefined),
    );
  }

  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }) {
    return this.write(
      (d) => {
        for (const e of entries) d.add(e.namespace, e.key);
      },
      () =>
        this.current.bulkRegister
          ? this.current.bulkRegister(entries, opts)
          : registerEach(this.current, entries, opts),
      (rs, t) => {
        const ok = rs.flatMap((r) => (r.ok ? [r.entry] : []));
        if (opts.atomic && ok.length !== rs.length) return undefined;
        return then(t.bulkRegister ? t.bulkRegister(ok, always) : registerEach(t, ok, always), () => undefined);
      },
    );
  }

  clearNamespace(namespace: string) {
    return this.write(
      (d) => d.clear(namespace),
      () =>
        this.current.clearNamespace ? this.current.clearNamespace(namespace) : clearByKey(this.current, namespace),
      (_n, t) => then(t.clearNamespace ? t.clearNamespace(namespace) : clearByKey(t, namespace), () => undefined),
    );
  }

  /** A staged restore (src/node/restore.ts) applied to the current store all or nothing; refused while a switch runs. */
  restoreAll(plan: RestorePlan): Promise<RestoreApplied> {
    if (this.switching)
      throw new ConflictError(`a switch to ${this.switching} is running: restore after it (registry node status)`);
    return restoreInto(this.current, plan);
  }

  close() {
    for (const s of this.subs) s.stop();
    this.subs.clear();
    const t = this.target;
    this.target = null;
    return then(this.current.close(), () => (t ? t.close() : undefined));
  }

  // --- the change feed, continuous across a flip -----------------------------------------------

  watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): MaybePromise<() => void> {
    if (opts.sinceRevision !== undefined && opts.sinceRevision < this.flipPoint) {
      onError?.(
        new CompactedError(
          `revision ${opts.sinceRevision} is compacted (the node switched backends at revision ${this.flipPoint}): list again and watch from the current revision`,
        ),
      );
      return () => {};
    }
    const sub: Sub = { namespace: opts.namespace, onEvent, onError, stop: () => {} };
    const since = opts.sinceRevision === undefined ? undefined : opts.sinceRevision - this.offset;
    return then(this.subscribe(this.current, sub, since, this.offset), (stop) => {
      sub.stop = stop;
      this.subs.add(sub);
      return () => {
        sub.stop();
        this.subs.delete(sub);
      };
    });
  }

  private subscribe(b: Backend, sub: Sub, since: number | undefined, offset: number): MaybePromise<() => void> {
    if (!b.watch) throw new InvalidInputError(`the ${b.name} backend has no change feed`);
    return b.watch(
      { namespace: sub.namespace, sinceRevision: since },
      (e) => {
        const out = offset ? { ...e, revision: e.revision + offset } : e;
        if (sub.held) sub.held.push(out);
        else sub.onEvent(out);
      },
      sub.onError,
    );
  }

  // --- the switch ------------------------------------------------------------------------------

  /** Move to the backend at `url`; resolves with the report once the node serves from it. */
  async switchTo(url: string, opts: Record<string, unknown> = {}): Promise<SwitchReport> {
    if (this.switching)
      throw new ConflictError(`a switch to ${this.switching} is already running: wait for it (registry node status)`);
    this.switching = url;
    const t0 = performance.now();
    let target: Backend | undefined;
    let tail: FeedTail | null = null;
    try {
      target = await this.openTarget(url, opts).catch((err: unknown) => {
        throw unusableTarget(url, err);
      });
      if (target.url === this.current.url) throw new InvalidInputError(`the node already serves ${target.url}`);
      if (target.capabilities.remote !== this.remote) {
        throw new InvalidInputError(
          `cannot switch ${this.current.url} to ${target.url} while running: one is another node, which judges liveness itself; restart the node on it (registry serve -b ${url})`,
        );
      }
      if (!target.watch) throw new InvalidInputError(`the ${target.name} backend has no change feed`);
      // An asynchronous store's watch lags its writes: follow it, so the flip can let it finish.
      tail = this.current.capabilities.synchronous ? null : await FeedTail.start(this.current);
      // 1. dual write from now on; every completed write joins the delta.
      this.mirrorFailures = 0;
      const delta = (this.delta = new Delta());
      this.target = target;
      // 2. backfill, never overwriting what a dual write already put there.
      const copied = await backfill(this.current, target);
      // 3. compare both stores while writes flow: differing keys join the delta.
      const walk = await compareAll(this.current, target, delta);
      // 4. catch up the delta while writes flow, until what is left is small.
      let repaired = 0;
      let rounds = 0;
      for (let last = Infinity; delta.size > PAUSE_DELTA && rounds < MAX_ROUNDS && delta.size < last * 2; rounds++) {
        last = delta.size;
        repaired += await catchUp(this.current, target, delta.take());
        await yieldLoop();
      }
      // 5. pause writes, let in-flight ones finish, catch up and verify the last delta, flip.
      let release!: () => void;
      this.gate = new Promise<void>((r) => (release = r));
      const p0 = performance.now();
      try {
        if (this.inFlight > 0) await new Promise<void>((r) => (this.drained = r));
        const last = delta.take();
        repaired += await catchUp(this.current, target, last);
        await verifyDelta(this.current, target, last);
        // the feed goes on from the same revision, subscribers move over.
        const oldOffset = this.offset;
        const oldRev = await this.currentRevision();
        const newOffset = oldRev - (await Promise.resolve(currentRevision(target) ?? 0));
        const old = this.current;
        const oldSubs = new Map<Sub, () => void>();
        const drainFeed = tail !== null;
        for (const s of this.subs) {
          oldSubs.set(s, s.stop);
          if (drainFeed) s.held = [];
          else s.stop();
          s.stop = await this.subscribe(target, s, oldRev - newOffset, newOffset);
        }
        this.current = target;
        this.target = null;
        this.delta = null;
        this.offset = newOffset;
        this.flipPoint = oldRev;
        const report: SwitchReport = {
          from: old.url,
          to: target.url,
          copied,
          repaired,
          differing: walk.differing,
          rounds,
          mirrorFailures: this.mirrorFailures,
          delta: last.size,
          entries: Object.values(walk.namespaces).reduce((a, n) => a + n.count, 0),
          namespaces: walk.namespaces,
          pausedMs: 0,
          durationMs: 0,
          revision: oldRev,
        };
        report.pausedMs = roundMs(performance.now() - p0);
        release();
        this.gate = null;
        // 6. an asynchronous old store's watch may still be delivering its last events: let it, then
        // hand each subscriber what the new store sent meanwhile; the old store is retired.
        if (tail) await tail.reach(oldRev - oldOffset, FEED_DRAIN_MS);
        for (const [s, stop] of oldSubs) {
          if (drainFeed) stop();
          const held = s.held ?? [];
          s.held = undefined;
          for (const e of held) s.onEvent(e);
        }
        await old.close();
        report.durationMs = roundMs(performance.now() - t0);
        this.history.push(report);
        return report;
      } finally {
        if (this.gate) {
          this.gate = null;
          release();
        }
      }
    } catch (err) {
      this.target = null;
      this.delta = null;
      for (const s of this.subs) {
        // A failed switch after subscribers were held (the subscribe to the target failed): release them.
        const held = s.held ?? [];
        s.held = undefined;
        for (const e of held) s.onEvent(e);
      }
      if (target && target !== this.current) await Promise.resolve(target.close()).catch(() => undefined);
      throw err;
    } finally {
      tail?.stop();
      this.switching = null;
    }
  }

  // --- helpers ---------------------------------------------------------------------------------

  /**
   * Apply a write to the current store (after the gate, while one is up) and, during a switch,
   * mirror its outcome to the target; once it completes its keys join the delta. Asynchronous writes
   * are counted so the flip can wait for them. A failed mirror is not fatal: the key is in the
   * delta, and the catch-up copies it (or fails the switch if the target cannot take it).
   */
  private write<T>(
    touch: (d: Delta) => void,
    apply: () => MaybePromise<T>,
    mirror: (result: T, target: Backend) => MaybePromise<void>,
  ): MaybePromise<T> {
    if (this.gate) return this.gate.then(() => this.write(touch, apply, mirror));
    let out: MaybePromise<T>;
    if (!this.target)
      out = apply(); // the common case: no switch running
    else {
      out = then(apply(), (r) => {
        const t = this.target;
        if (!t) return r;
        let m: MaybePromise<void>;
        try {
          m = mirror(r, t);
        } catch {
          this.mirrorFailures++;
          return r;
        }
        return m instanceof Promise
          ? m.then(
              () => r,
              () => {
                this.mirrorFailures++;
                return r;
              },
            )
          : r;
      });
    }
    if (!(out instanceof Promise)) {
      if (this.delta) touch(this.delta);
      return out;
    }
    this.inFlight++;
    return out.finally(() => {
      if (this.delta) touch(this.delta);
      if (--this.inFlight === 0 && this.drained) {
        const d = this.drained;
        this.drained = null;
        d();
      }
    });
  }
}

/**
 * The whole feed of an asynchronous store followed from the start of a switch: `reach(rev)` waits
 * until the watch delivered revision `rev` (the store's revision at the flip), or was quiet for a
 * while (the last revision may not be an entry's), or `deadline` ms passed. Watches of one store
 * share one stream, so by then the subscribers' watches delivered theirs too (plus a short grace).
 */
class FeedTail {
  private max = 0;
  private lastAt = performance.now();
  private constructor(private stopFn: () => void = () => {}) {}

  static async start(b: Backend): Promise<FeedTail | null> {
    if (!b.watch) return null;
    const t = new FeedTail();
    t.stopFn = await b.watch({}, (e) => {
      t.max = Math.max(t.max, e.revision);
      t.lastAt = performance.now();
    });
    return t;
  }

  async reach(rev: number, deadline: number): Promise<void> {
    const t0 = performance.now();
    const quiet = 250;
    while (this.max < rev && performance.now() - this.lastAt < quiet && performance.now() - t0 < deadline)
      await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
  }

  stop(): void {
    this.stopFn();
  }
}

/**
 * A target that cannot be opened is a bad request, not a fault of the node (issue 12 item 14): a
 * file path that cannot hold a store (under a file, a directory, not a database) → 400 naming the
 * path and the cause. An unreachable network store stays UNREACHABLE (502): retrying may help.
 */
function unusableTarget(url: string, err: unknown): Error {
  const local = /^(sqlite|legacy):/i.test(url);
  if (err instanceof RegistryError && (err.code === 'INVALID_INPUT' || (err.code === 'UNREACHABLE' && !local)))
    return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new InvalidInputError(`cannot switch to ${url}: ${msg}`, { cause: err });
}
