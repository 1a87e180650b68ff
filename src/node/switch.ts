/**
 * Runtime backend switching of a node (design §3): the node moves to another backend with no lost
 * and no failed operation.
 *
 *   dual write → backfill → pause writes, repair and verify → flip → resume → close the old store
 *
 * `SwitchableBackend` sits between the node's service and its store. While a switch runs, every
 * mutation applied to the current store is mirrored to the target with its outcome (dual write);
 * the backfill copies the current store into the target without overwriting what dual writes put
 * there. Then new mutations wait (they are delayed, never failed) while in-flight ones finish, the
 * two stores are compared key by key and the target repaired, per-namespace digests must match,
 * and the switchable flips to the target. Change-feed subscribers move over at the flip with
 * revisions continuing where the old feed stopped; a resume from before the flip is refused as
 * compacted (list again), as any feed does for history it no longer keeps.
 */
import { createHash } from 'node:crypto';
import {
  type Backend,
  type BulkResult,
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
import { BucketDigester } from '../registry/digest.js';
import { restoreInto } from '../registry/dump.js';
import { currentRevision } from './feed.js';
import { roundMs } from '../core/time.js';

export const SWITCH_BUCKETS = 64;

/** What a finished switch reports. */
export interface SwitchReport {
  from: string;
  to: string;
  /** Entries copied by the backfill. */
  copied: number;
  /** Keys fixed during the pause (changed while the backfill ran). */
  repaired: number;
  /** Entries in the target at the flip, and their digest per namespace. */
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
}

const always: RegisterOptions = { replaceIf: () => true };
const never: RegisterOptions = { replaceIf: () => false };

export class SwitchableBackend implements Backend {
  readonly capabilities: Capabilities;
  private current: Backend;
  private target: Backend | null = null;
  private mirrorError: Error | null = null;
  /** Resolves when writes may go on; set while the flip runs. */
  private gate: Promise<void> | null = null;
  private inFlight = 0;
  private drained: (() => void) | null = null;
  private offset = 0;
  private flipPoint = 0;
  private readonly subs = new Set<Sub>();
  private switching: string | null = null;
  readonly history: SwitchReport[] = [];

  constructor(
    initial: Backend,
    private readonly openTarget: OpenTarget,
  ) {
    this.current = initial;
    const c = initial.capabilities;
    // Fixed at construction: the service above decides locking and liveness from these once.
    this.capabilities = { ...c, watch: !!initial.watch, bulkRegister: true, digest: true, transactions: false };
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

  lookup(namespace: string, key: string) {
    return this.current.lookup(namespace, key);
  }

  list(namespace: string, opts: ListOptions) {
    return this.current.list(namespace, opts);
  }

  count(namespace?: string) {
    return this.current.count(namespace);
  }

  namespaces() {
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

  currentRevision(): number {
    return (currentRevision(this.current) ?? 0) + this.offset;
  }

  // --- writes: the current store, mirrored to the target during a switch ----------------------

  register(entry: Registration, opts: RegisterOptions) {
    return this.write(
      () => this.current.register(entry, opts),
      (r, t) => (r.ok ? then(t.register(r.entry, always), () => undefined) : undefined),
    );
  }

  unregister(namespace: string, key: string, cond?: UnregisterCondition) {
    return this.write(
      () => this.current.unregister(namespace, key, cond),
      (removed, t) => (removed ? then(t.unregister(namespace, key), () => undefined) : undefined),
    );
  }

  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions) {
    return this.write(
      () => this.current.updateMetadata(namespace, key, meta, opts),
      (e, t) => (e ? then(t.register(e, always), () => undefined) : undefined),
    );
  }

  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }) {
    return this.write(
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
    return then(this.subscribe(this.current, sub, since, this.offset), () => {
      this.subs.add(sub);
      return () => {
        sub.stop();
        this.subs.delete(sub);
      };
    });
  }

  private subscribe(b: Backend, sub: Sub, since: number | undefined, offset: number): MaybePromise<void> {
    if (!b.watch) throw new InvalidInputError(`the ${b.name} backend has no change feed`);
    return then(
      b.watch(
        { namespace: sub.namespace, sinceRevision: since },
        (e) => sub.onEvent(offset ? { ...e, revision: e.revision + offset } : e),
        sub.onError,
      ),
      (stop) => {
        sub.stop = stop;
      },
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
    try {
      target = await this.openTarget(url, opts).catch((err: unknown) => {
        throw unusableTarget(url, err);
      });
      if (target.url === this.current.url) throw new InvalidInputError(`the node already serves ${target.url}`);
      const c = this.capabilities;
      if (target.capabilities.synchronous !== c.synchronous || target.capabilities.remote !== c.remote) {
        throw new InvalidInputError(
          `cannot switch ${this.current.url} (${kind(c)}) to ${target.url} (${kind(target.capabilities)}) while running: restart the node on it (registry serve -b ${url})`,
        );
      }
      if (!target.watch) throw new InvalidInputError(`the ${target.name} backend has no change feed`);
      // 1. dual write from now on.
      this.mirrorError = null;
      this.target = target;
      // 2. backfill, never overwriting what a dual write already put there.
      let copied = 0;
      for (const ns of await this.current.namespaces()) {
        for (let after: string | undefined; ;) {
          const page = await this.current.list(ns, { after, limit: 1000 });
          const rs = await (target.bulkRegister
            ? target.bulkRegister(page.items, never)
            : registerEach(target, page.items, never));
          copied += rs.filter((r) => r.ok).length;
          if (!page.next) break;
          after = page.next;
        }
      }
      // 3. pause writes, let in-flight ones finish, repair what changed during the backfill, verify.
      let release!: () => void;
      this.gate = new Promise<void>((r) => (release = r));
      const p0 = performance.now();
      try {
        if (this.inFlight > 0) await new Promise<void>((r) => (this.drained = r));
        if (this.mirrorError)
          throw new ConflictError(
            `a dual write to ${target.url} failed: ${(this.mirrorError as Error).message}; the node stays on ${this.current.url}`,
          );
        const repaired = await repair(this.current, target);
        const namespaces = await verify(this.current, target);
        // 4. flip: the feed goes on from the same revision, subscribers move over.
        const oldRev = this.currentRevision();
        const newOffset = oldRev - (currentRevision(target) ?? 0);
        const old = this.current;
        this.current = target;
        this.target = null;
        this.offset = newOffset;
        this.flipPoint = oldRev;
        for (const s of this.subs) {
          s.stop();
          await this.subscribe(target, s, oldRev - newOffset, newOffset);
        }
        const report: SwitchReport = {
          from: old.url,
          to: target.url,
          copied,
          repaired,
          entries: Object.values(namespaces).reduce((a, n) => a + n.count, 0),
          namespaces,
          pausedMs: 0,
          durationMs: 0,
          revision: oldRev,
        };
        report.pausedMs = roundMs(performance.now() - p0);
        release();
        this.gate = null;
        // 5. the old store is retired.
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
      if (target && target !== this.current) await Promise.resolve(target.close()).catch(() => undefined);
      throw err;
    } finally {
      this.switching = null;
    }
  }

  // --- helpers ---------------------------------------------------------------------------------

  /**
   * Apply a write to the current store (after the gate, while one is up) and, during a switch,
   * mirror its outcome to the target. Asynchronous writes are counted so the flip can wait for them.
   */
  private write<T>(
    apply: () => MaybePromise<T>,
    mirror: (result: T, target: Backend) => MaybePromise<void>,
  ): MaybePromise<T> {
    if (this.gate) return this.gate.then(() => this.write(apply, mirror));
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
        } catch (e) {
          this.mirrorError ??= e as Error;
          return r;
        }
        return m instanceof Promise
          ? m.then(
              () => r,
              (e) => {
                this.mirrorError ??= e as Error;
                return r;
              },
            )
          : r;
      });
    }
    if (!(out instanceof Promise)) return out;
    this.inFlight++;
    return out.finally(() => {
      if (--this.inFlight === 0 && this.drained) {
        const d = this.drained;
        this.drained = null;
        d();
      }
    });
  }
}

function kind(c: Capabilities): string {
  return `${c.synchronous ? 'synchronous' : 'asynchronous'}${c.remote ? ', remote' : ''}`;
}

async function registerEach(b: Backend, entries: Registration[], opts: RegisterOptions): Promise<BulkResult[]> {
  const out: BulkResult[] = [];
  for (const e of entries) out.push(await b.register(e, opts));
  return out;
}

async function clearByKey(b: Backend, namespace: string): Promise<number> {
  let n = 0;
  for (;;) {
    const page = await b.list(namespace, { limit: 1000 });
    for (const e of page.items) if (await b.unregister(namespace, e.key)) n++;
    if (!page.next) return n;
  }
}

/** Every stored entry of a namespace, page by page. */
async function* all(b: Backend, namespace: string): AsyncGenerator<Registration> {
  for (let after: string | undefined; ;) {
    const page = await b.list(namespace, { after, limit: 1000 });
    yield* page.items;
    if (!page.next) return;
    after = page.next;
  }
}

async function digestOf(b: Backend, namespace: string, buckets: number, strict = false) {
  const d = new BucketDigester(buckets, strict);
  for await (const e of all(b, namespace)) d.add(e);
  return d.result();
}

const same = (a: Registration, b: Registration) =>
  a.pid === b.pid &&
  a.node === b.node &&
  a.registeredAt === b.registeredAt &&
  a.updatedAt === b.updatedAt &&
  JSON.stringify(a.meta) === JSON.stringify(b.meta);

/** Make `target` hold exactly what `source` holds (writes are paused); returns keys fixed. */
async function repair(source: Backend, target: Backend): Promise<number> {
  let fixed = 0;
  const spaces = new Set([...(await source.namespaces()), ...(await target.namespaces())]);
  for (const ns of spaces) {
    const want = new Map<string, Registration>();
    for await (const e of all(source, ns)) want.set(e.key, e);
    for await (const e of all(target, ns)) {
      const w = want.get(e.key);
      if (!w) {
        await target.unregister(ns, e.key);
        fixed++;
      } else if (!same(w, e)) {
        await target.register(w, always);
        fixed++;
      }
      want.delete(e.key);
    }
    for (const e of want.values()) {
      await target.register(e, always);
      fixed++;
    }
  }
  return fixed;
}

/** Per-namespace digests (timestamps included) of both stores must be equal. */
async function verify(source: Backend, target: Backend): Promise<Record<string, { count: number; digest: string }>> {
  const out: Record<string, { count: number; digest: string }> = {};
  const spaces = new Set([...(await source.namespaces()), ...(await target.namespaces())]);
  for (const ns of spaces) {
    const [a, b] = [await digestOf(source, ns, SWITCH_BUCKETS, true), await digestOf(target, ns, SWITCH_BUCKETS, true)];
    const bad = a.digests.findIndex((d, i) => d !== b.digests[i]);
    if (bad >= 0)
      throw new ConflictError(
        `verify failed: namespace "${ns}" differs in bucket ${bad} between ${source.url} and ${target.url}; the node stays on ${source.url}`,
      );
    const total = a.counts.reduce((x, y) => x + y, 0);
    out[ns] = { count: total, digest: combined(a.digests) };
  }
  return out;
}

function combined(digests: string[]): string {
  return createHash('sha256').update(digests.join('')).digest('hex');
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
