/**
 * The copy and verify steps of a runtime switch (src/node/switch.ts), all of them run while writes
 * flow, so the pause at the flip is bounded by the writes in flight, not by the size of the store:
 *
 * - `backfill` copies the current store into the target page by page without overwriting what a
 *   dual write already put there;
 * - `compareAll` walks both stores in key order and puts every key that differs into the delta;
 * - `catchUp` makes the target hold what the current store holds for the keys of a delta (the keys
 *   written since the last catch-up), and `verifyDelta` digests those keys on both sides.
 *
 * Every write the switchable sees while a switch runs adds its keys to the delta when it completes
 * (after its mirror), so a key that is not in the delta was equal on both sides when last compared
 * and has not been written since.
 */
import { createHash } from 'node:crypto';
import {
  type Backend,
  type BulkResult,
  ConflictError,
  type RegisterOptions,
  type Registration,
} from '../backends/contract.js';
import { BucketDigester, Digest, entryIdentity } from '../registry/digest.js';
import { zipByKey } from '../core/keys.js';

export const SWITCH_BUCKETS = 64;
/** Entries per page of the backfill and the comparison: small, so one page's synchronous work (a SQLite
 * transaction of the target, a page read) holds the event loop only briefly while writes flow. */
const PAGE = 256;
/** Keys caught up at once (their reads and writes overlap on a networked store). */
const PARALLEL = 64;

export const always: RegisterOptions = { replaceIf: () => true };
const never: RegisterOptions = { replaceIf: () => false };

/** Let the event loop serve requests between pages (a synchronous store answers without yielding). */
export const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Keys written since the last catch-up, per namespace; a cleared namespace is caught up whole. */
export class Delta {
  keys = new Map<string, Set<string>>();
  cleared = new Set<string>();
  size = 0;

  add(namespace: string, key: string): void {
    let s = this.keys.get(namespace);
    if (!s) this.keys.set(namespace, (s = new Set()));
    const n = s.size;
    s.add(key);
    this.size += s.size - n;
  }

  clear(namespace: string): void {
    this.cleared.add(namespace);
    this.size++;
  }

  /** Move everything into a new Delta and start empty. */
  take(): Delta {
    const d = new Delta();
    [d.keys, d.cleared, d.size] = [this.keys, this.cleared, this.size];
    this.keys = new Map();
    this.cleared = new Set();
    this.size = 0;
    return d;
  }

  *pairs(): Generator<[string, string]> {
    for (const [ns, keys] of this.keys) if (!this.cleared.has(ns)) for (const k of keys) yield [ns, k];
  }
}

export async function registerEach(b: Backend, entries: Registration[], opts: RegisterOptions): Promise<BulkResult[]> {
  const out: BulkResult[] = [];
  for (const e of entries) out.push(await b.register(e, opts));
  return out;
}

export async function clearByKey(b: Backend, namespace: string): Promise<number> {
  let n = 0;
  for (;;) {
    const page = await b.list(namespace, { limit: PAGE });
    for (const e of page.items) if (await b.unregister(namespace, e.key)) n++;
    if (!page.next) return n;
  }
}

/** Every stored entry of a namespace, page by page, yielding the event loop between pages. */
export async function* all(b: Backend, namespace: string): AsyncGenerator<Registration> {
  for (let after: string | undefined; ;) {
    const page = await b.list(namespace, { after, limit: PAGE });
    yield* page.items;
    if (!page.next) return;
    after = page.next;
    await yieldLoop();
  }
}

export async function digestOf(b: Backend, namespace: string, buckets: number, strict = false) {
  const d = new BucketDigester(buckets, strict);
  for await (const e of all(b, namespace)) d.add(e);
  return d.result();
}

/** Copy `source` into `target`, never overwriting a key the target already holds; returns entries copied. */
export async function backfill(source: Backend, target: Backend): Promise<number> {
  let copied = 0;
  for (const ns of await source.namespaces()) {
    for (let after: string | undefined; ;) {
      const page = await source.list(ns, { after, limit: PAGE });
      const rs = await (target.bulkRegister
        ? target.bulkRegister(page.items, never)
        : registerEach(target, page.items, never));
      copied += rs.filter((r) => r.ok).length;
      if (!page.next) break;
      after = page.next;
      await yieldLoop();
    }
  }
  return copied;
}

/** Equal entries: identity, metadata (canonical), timestamps and process start time. */
export const same = (a: Registration, b: Registration): boolean =>
  a.pid === b.pid && (a.pidStart ?? null) === (b.pidStart ?? null) && entryIdentity(a, true) === entryIdentity(b, true);

export interface WalkResult {
  /** Entries of the source walked, and their digest, per namespace (taken while writes flow). */
  namespaces: Record<string, { count: number; digest: string }>;
  /** Keys found different (added to the delta). */
  differing: number;
}

/** Walk both stores in key order while writes flow; every key that differs goes into `delta`. */
export async function compareAll(source: Backend, target: Backend, delta: Delta): Promise<WalkResult> {
  const out: WalkResult = { namespaces: {}, differing: 0 };
  const spaces = new Set([...(await source.namespaces()), ...(await target.namespaces())]);
  for (const ns of spaces) {
    const d = new BucketDigester(SWITCH_BUCKETS, true);
    for await (const [x, y] of zipByKey(all(source, ns), all(target, ns))) {
      if (!x || !y || !same(x, y)) {
        delta.add(ns, (x ?? y)!.key);
        out.differing++;
      }
      if (x) d.add(x);
    }
    const r = d.result();
    out.namespaces[ns] = { count: r.counts.reduce((p, q) => p + q, 0), digest: combined(r.digests) };
  }
  return out;
}

/** Make `target` hold what `source` holds for the keys of `delta`; returns the keys fixed. */
export async function catchUp(source: Backend, target: Backend, delta: Delta): Promise<number> {
  let fixed = 0;
  for (const ns of delta.cleared) fixed += await reconcileNamespace(source, target, ns);
  let batch: Promise<boolean>[] = [];
  for (const [ns, key] of delta.pairs()) {
    batch.push(fixKey(source, target, ns, key));
    if (batch.length >= PARALLEL) {
      fixed += (await Promise.all(batch)).filter(Boolean).length;
      batch = [];
    }
  }
  fixed += (await Promise.all(batch)).filter(Boolean).length;
  return fixed;
}

async function fixKey(source: Backend, target: Backend, ns: string, key: string): Promise<boolean> {
  const [want, have] = await Promise.all([source.lookup(ns, key), target.lookup(ns, key)]);
  if (!want) {
    if (!have) return false;
    await target.unregister(ns, key);
    return true;
  }
  if (have && same(want, have)) return false;
  await target.register(want, always);
  return true;
}

/** Make a whole namespace of `target` equal to `source` (after a clear during the switch). */
async function reconcileNamespace(source: Backend, target: Backend, ns: string): Promise<number> {
  let fixed = 0;
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
  return fixed;
}

/**
 * Digest the keys of `delta` (timestamps included) on both sides; they must be equal (writes are
 * paused). A cleared namespace is digested whole. Throws ConflictError naming the first difference.
 */
export async function verifyDelta(source: Backend, target: Backend, delta: Delta): Promise<void> {
  const fail = (what: string) => {
    throw new ConflictError(
      `verify failed: ${what} differs between ${source.url} and ${target.url}; the node stays on ${source.url}`,
    );
  };
  for (const ns of delta.cleared) {
    const [a, b] = [await digestOf(source, ns, SWITCH_BUCKETS, true), await digestOf(target, ns, SWITCH_BUCKETS, true)];
    const bad = a.digests.findIndex((d, i) => d !== b.digests[i]);
    if (bad >= 0) fail(`namespace "${ns}" (bucket ${bad})`);
  }
  const pairs = [...delta.pairs()];
  for (let i = 0; i < pairs.length; i += PARALLEL) {
    const chunk = pairs.slice(i, i + PARALLEL);
    const [da, db] = [new Digest(), new Digest()];
    const read = (b: Backend, d: Digest) =>
      Promise.all(
        chunk.map(async ([ns, key]) => {
          const e = await b.lookup(ns, key);
          d.addText(e ? entryIdentity(e, true) : `-${ns}/${key}`);
        }),
      );
    await Promise.all([read(source, da), read(target, db)]);
    if (da.hex() !== db.hex()) fail(`one of ${chunk.length} keys written during the switch`);
  }
}

export function combined(digests: string[]): string {
  return createHash('sha256').update(digests.join('')).digest('hex');
}
