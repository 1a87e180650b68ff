/**
 * `verify A B` (design §5), the migrations' proofs and the hybrid's divergence check: two states are equivalent when they hold the same (namespace, key)
 * set with the same pid, node and metadata (canonical JSON); timestamps only when strict.
 *
 * 1. Per namespace, order-independent bucket digests of both sides, computed where the data
 *    lives: the backend's `digest` capability (SQLite scans its own file; a remote node computes
 *    its own and sends only the digests), else a BucketDigester over the listing.
 * 2. Equal digests everywhere: equivalent, nothing else is read.
 * 3. Mismatching buckets are narrowed to keys by one merge-join pass over both listings in key
 *    order, looking only at keys of those buckets: bounded memory, whatever the size.
 *
 * A backend digest covers stored rows, dead ones included; the narrowing pass judges liveness, so
 * a bucket that differs only by dead rows narrows to nothing and the states are equivalent.
 *
 * Each side is a service (`ProcessRegistry`) used read-only: its namespaces, stored counts,
 * digests (with the fallbacks of src/registry/service-store.ts) and stored pages judged by its
 * liveness; nothing here calls a backend. It lives with the service, below the migrations
 * (src/migrations/verify.ts re-exports it), because the service itself uses it: a hybrid's health
 * compares its two sides (src/registry/compare-stores.ts).
 */
import type { BucketDigests, Registration } from '../backends/contract.js';
import { bucketOf, canonicalJson, foldDigests } from '../core/digest.js';
import { compareKeys, zipByKey } from '../core/keys.js';
import type { ServiceBase } from './service-base.js';
import type { OffThreadDigester } from './service-store.js';

/**
 * One side of a comparison: the service in front of a store (a `ProcessRegistry`), read-only.
 * Entries of its node name are judged by its liveness; a dead entry reads as absent.
 */
export type State = Pick<
  ServiceBase,
  'url' | 'isAlive' | 'namespaces' | 'storedCount' | 'digestWithSource' | 'offThreadDigests' | 'entriesReadOnly'
>;

export interface Difference {
  namespace: string;
  key: string;
  /** field → [A's value, B's value] for the fields that differ. */
  fields: Record<string, [unknown, unknown]>;
}

export interface NamespaceReport {
  namespace: string;
  /** Live entries counted in A and B (from digests where available, stored rows). */
  a: number;
  b: number;
  buckets: number;
  mismatchedBuckets: number;
  onlyInA: number;
  onlyInB: number;
  differing: number;
  /** How the digests were computed: "backend" (where the data lives) or "listing". */
  digestA: 'backend' | 'listing';
  digestB: 'backend' | 'listing';
}

export interface VerifyReport {
  equivalent: boolean;
  a: string;
  b: string;
  strict: boolean;
  namespaces: NamespaceReport[];
  totals: { onlyInA: number; onlyInB: number; differing: number };
  /** Up to maxDiffs entries each. */
  onlyInA: Registration[];
  onlyInB: Registration[];
  differing: Difference[];
  /** True when more differences exist than were listed. */
  truncated: boolean;
  durationMs: number;
}

export interface VerifyOptions {
  /** Namespaces to compare (default: the union of both sides' namespaces). */
  namespaces?: string[];
  /** Compare timestamps too. */
  strict?: boolean;
  /** List at most this many differences of each kind (default 100); totals stay exact. */
  maxDiffs?: number;
  /** Fixed bucket count (default: by size, 16..4096). */
  buckets?: number;
  /** Called for every difference found (repairs use it); listing caps do not apply. */
  onDiff?(d: DiffEvent): void | Promise<void>;
  onProgress?(done: number): void;
}

export type DiffEvent =
  | { kind: 'onlyInA'; entry: Registration }
  | { kind: 'onlyInB'; entry: Registration }
  | { kind: 'differing'; a: Registration; b: Registration; fields: Record<string, [unknown, unknown]> };

/** Compare two states; see the module comment. */
export async function verifyStates(A: State, B: State, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const maxDiffs = opts.maxDiffs ?? 100;
  const strict = !!opts.strict;
  const spaces = opts.namespaces ?? union(await A.namespaces(), await B.namespaces());
  const report: VerifyReport = {
    equivalent: true,
    a: A.url,
    b: B.url,
    strict,
    namespaces: [],
    totals: { onlyInA: 0, onlyInB: 0, differing: 0 },
    onlyInA: [],
    onlyInB: [],
    differing: [],
    truncated: false,
    durationMs: 0,
  };
  const plan: Array<{ namespace: string; buckets: number }> = [];
  let allA: Map<string, SideDigest>;
  let allB: Map<string, SideDigest>;
  const fileA = offThreadFile(A, strict);
  const fileB = offThreadFile(B, strict);
  if (opts.buckets === undefined && fileA && fileB) {
    // Two stores each digested off the event loop (SQLite files, each in its own worker): digest
    // at the finest bucket count (no counting pass first), then fold both to the count their sizes call for.
    const fine = spaces.map((namespace) => ({ namespace, buckets: MAX_BUCKETS }));
    const [fa, fb] = await Promise.all([fileA(fine), fileB(fine)]);
    allA = new Map();
    allB = new Map();
    for (const namespace of spaces) {
      const buckets = bucketCount(Math.max(sum(fa.get(namespace)!.counts), sum(fb.get(namespace)!.counts)));
      plan.push({ namespace, buckets });
      allA.set(namespace, { d: foldDigests(fa.get(namespace)!, buckets), how: 'backend' });
      allB.set(namespace, { d: foldDigests(fb.get(namespace)!, buckets), how: 'backend' });
    }
  } else {
    for (const namespace of spaces) {
      plan.push({
        namespace,
        buckets: opts.buckets ?? bucketCount(Math.max(await A.storedCount(namespace), await B.storedCount(namespace))),
      });
    }
    // Both sides at once: each computes its digests where its data lives.
    [allA, allB] = await Promise.all([sideDigests(A, plan, strict, fileA), sideDigests(B, plan, strict, fileB)]);
  }
  for (const { namespace, buckets } of plan) {
    const da = allA.get(namespace)!;
    const db = allB.get(namespace)!;
    const bad = new Set<number>();
    for (let i = 0; i < buckets; i++) if (da.d.digests[i] !== db.d.digests[i]) bad.add(i);
    const nr: NamespaceReport = {
      namespace,
      a: sum(da.d.counts),
      b: sum(db.d.counts),
      buckets,
      mismatchedBuckets: bad.size,
      onlyInA: 0,
      onlyInB: 0,
      differing: 0,
      digestA: da.how,
      digestB: db.how,
    };
    if (bad.size > 0) {
      await diffNamespace(A, B, namespace, {
        strict,
        only: (key) => bad.has(bucketOf(namespace, key, buckets)),
        onProgress: opts.onProgress,
        onDiff: async (d) => {
          if (d.kind === 'onlyInA') {
            nr.onlyInA++;
            if (report.onlyInA.length < maxDiffs) report.onlyInA.push(d.entry);
            else report.truncated = true;
          } else if (d.kind === 'onlyInB') {
            nr.onlyInB++;
            if (report.onlyInB.length < maxDiffs) report.onlyInB.push(d.entry);
            else report.truncated = true;
          } else {
            nr.differing++;
            if (report.differing.length < maxDiffs)
              report.differing.push({ namespace, key: d.a.key, fields: d.fields });
            else report.truncated = true;
          }
          await opts.onDiff?.(d);
        },
      });
    }
    report.totals.onlyInA += nr.onlyInA;
    report.totals.onlyInB += nr.onlyInB;
    report.totals.differing += nr.differing;
    report.namespaces.push(nr);
  }
  report.equivalent = report.totals.onlyInA + report.totals.onlyInB + report.totals.differing === 0;
  report.durationMs = Math.round(performance.now() - t0);
  return report;
}

/** Bucket digests of one namespace: the backend's own when it has them, else over the live listing. */
export function digestOf(
  s: State,
  namespace: string,
  buckets: number,
  strict = false,
): Promise<{ d: BucketDigests; how: 'backend' | 'listing' }> {
  return s.digestWithSource(namespace, buckets, { strict });
}

type SideDigest = { d: BucketDigests; how: 'backend' | 'listing' };

/** The largest bucket count (bucketCount's cap); every smaller one divides it. */
const MAX_BUCKETS = 4096;

/** The off-thread digester of a side worth digesting off the event loop, if its backend has one. */
function offThreadFile(s: State, strict: boolean): OffThreadDigester | undefined {
  return strict ? undefined : s.offThreadDigests();
}

/**
 * Digests of every planned namespace of one side. A SQLite file is scanned in a worker thread
 * on its own connection (so both sides of a verify run in parallel); other backends answer
 * themselves (`digest` capability: a node or etcd computes next to its data) or are listed.
 */
async function sideDigests(
  s: State,
  plan: Array<{ namespace: string; buckets: number }>,
  strict: boolean,
  file: OffThreadDigester | undefined,
): Promise<Map<string, SideDigest>> {
  const out = new Map<string, SideDigest>();
  if (file) {
    const res = await file(plan);
    for (const [ns, d] of res) out.set(ns, { d, how: 'backend' });
    return out;
  }
  for (const { namespace, buckets } of plan) out.set(namespace, await digestOf(s, namespace, buckets, strict));
  return out;
}

/** Every live entry of a namespace in key order, page by page, without lazy deletion (read-only). */
export function liveEntries(
  s: State,
  namespace: string,
  opts: { after?: string; pageSize?: number } = {},
): AsyncGenerator<Registration> {
  return s.entriesReadOnly({ namespace, after: opts.after, pageSize: opts.pageSize ?? 2000 });
}

/**
 * Merge-join both live listings of a namespace in key order and report every difference (of
 * keys accepted by `only`). Memory: one page per side.
 */
export async function diffNamespace(
  A: State,
  B: State,
  namespace: string,
  opts: {
    strict?: boolean;
    only?: (key: string) => boolean;
    onDiff(d: DiffEvent): void | Promise<void>;
    onProgress?(n: number): void;
  },
): Promise<void> {
  const only = opts.only ?? (() => true);
  let n = 0;
  for await (const [ea, eb] of zipByKey(liveEntries(A, namespace), liveEntries(B, namespace))) {
    if (++n % 10_000 === 0) opts.onProgress?.(n);
    if (ea === undefined) {
      if (eb !== undefined && only(eb.key)) await opts.onDiff({ kind: 'onlyInB', entry: eb });
    } else if (eb === undefined) {
      if (only(ea.key)) await opts.onDiff({ kind: 'onlyInA', entry: ea });
    } else if (only(ea.key)) {
      const fields = fieldDiff(ea, eb, !!opts.strict);
      if (fields) await opts.onDiff({ kind: 'differing', a: ea, b: eb, fields });
    }
  }
}

/** The fields in which two entries of the same key differ, or undefined when equivalent. */
export function fieldDiff(
  a: Registration,
  b: Registration,
  strict: boolean,
): Record<string, [unknown, unknown]> | undefined {
  const out: Record<string, [unknown, unknown]> = {};
  if (a.pid !== b.pid) out.pid = [a.pid, b.pid];
  if (a.node !== b.node) out.node = [a.node, b.node];
  if (canonicalJson(a.meta) !== canonicalJson(b.meta)) out.meta = [a.meta, b.meta];
  if (strict) {
    if (a.registeredAt !== b.registeredAt) out.registeredAt = [a.registeredAt, b.registeredAt];
    if (a.updatedAt !== b.updatedAt) out.updatedAt = [a.updatedAt, b.updatedAt];
  }
  return Object.keys(out).length ? out : undefined;
}

/** About 256 entries per bucket, a power of two between 16 and 4096. */
export function bucketCount(entries: number): number {
  let b = 16;
  while (b < MAX_BUCKETS && b * 256 < entries) b *= 2;
  return b;
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].sort(compareKeys);
}

function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
