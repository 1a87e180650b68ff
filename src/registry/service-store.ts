/**
 * The service's store operations over a backend: the one home of the cursor loop (`pages`) and of
 * the fallbacks for optional contract methods (`digest`, `clearNamespace`), and the
 * compare-and-swap replace rule. `ProcessRegistry` (src/registry/service.ts) exposes them as
 * methods; the migration states (src/migrations/verify.ts), which compare two stores read-only
 * with a liveness judge, use them directly. Nothing else pages through a backend by hand.
 */
import type {
  Backend,
  BucketDigests,
  ListOptions,
  Page,
  RegisterOptions,
  Registration,
  RestoreApplied,
  RestorePlan,
} from '../backends/contract.js';
import { InvalidInputError } from '../backends/contract.js';
import { BucketDigester } from './digest.js';
import { restoreGuarded } from './restore-guard.js';

export interface PagesOptions {
  /** Start after this key. */
  after?: string;
  /** Entries per backend page (default 1000). */
  pageSize?: number;
  where?: ListOptions['where'];
}

/** Every page of stored entries of a namespace (dead ones included), in key order. */
export async function* pages(backend: Backend, namespace: string, opts: PagesOptions = {}): AsyncGenerator<Page> {
  let after = opts.after;
  const limit = opts.pageSize ?? 1000;
  for (;;) {
    const page = await backend.list(namespace, { after, limit, ...(opts.where ? { where: opts.where } : {}) });
    yield page;
    if (!page.next) return;
    after = page.next;
  }
}

/** Every stored entry of a namespace that `keep` accepts, in key order, page by page. */
export async function* storedEntries(
  backend: Backend,
  namespace: string,
  keep: (e: Registration) => boolean,
  opts: PagesOptions = {},
): AsyncGenerator<Registration> {
  for await (const page of pages(backend, namespace, opts)) for (const e of page.items) if (keep(e)) yield e;
}

/**
 * Per-bucket digests of the live entries of a namespace: the backend's own where the data lives
 * (`digest` capability) unless `strict`, else computed over the live listing.
 */
export async function digestNamespace(
  backend: Backend,
  namespace: string,
  buckets: number,
  isAlive: (e: Registration) => boolean,
  strict = false,
): Promise<{ d: BucketDigests; how: 'backend' | 'listing' }> {
  if (!strict && backend.capabilities.digest && backend.digest)
    return { d: await backend.digest(namespace, buckets), how: 'backend' };
  const dg = new BucketDigester(buckets, strict);
  for await (const e of storedEntries(backend, namespace, isAlive, { pageSize: 2000 })) dg.add(e);
  return { d: dg.result(), how: 'listing' };
}

/** Remove every entry of a namespace: the backend's own `clearNamespace`, else key by key. */
export async function clearNamespace(backend: Backend, namespace: string): Promise<number> {
  if (backend.clearNamespace) return backend.clearNamespace(namespace);
  // The cursor is a key, so removing the keys of a page already read does not move it.
  let n = 0;
  for await (const e of storedEntries(backend, namespace, () => true))
    if (await backend.unregister(namespace, e.key)) n++;
  return n;
}

/** A compare-and-swap condition: replace the holder only if it has these fields. */
export interface SwapCondition {
  pid?: number;
  node?: string;
  registeredAt?: number;
}

/**
 * The rule of a compare-and-swap register: the usual replace rule (`base`: same process, or the
 * holder is dead), or the holder matches `cond`. An empty condition would match anyone: refused.
 */
export function swapRule(base: RegisterOptions, cond: SwapCondition): RegisterOptions {
  if (cond.pid === undefined && cond.node === undefined && cond.registeredAt === undefined)
    throw new InvalidInputError(
      'invalid replace: an empty compare-and-swap condition matches any holder: name pid, node or registeredAt',
    );
  const matches = (h: Registration) =>
    (cond.pid === undefined || h.pid === cond.pid) &&
    (cond.node === undefined || h.node === cond.node) &&
    (cond.registeredAt === undefined || h.registeredAt === cond.registeredAt);
  return { replaceIf: (h) => base.replaceIf(h) || matches(h) };
}

const always = { replaceIf: () => true };

/**
 * Apply a checked dump to `backend` all or nothing: a backend with `restoreAll` (SQLite, a node,
 * etcd) by its own staged protocol; another synchronous backend with transactions in one transaction. Anything else
 * (hybrid, legacy) is written in batches after the check: not atomic against a crash midway
 * (docs/restore.md).
 */
export async function restoreInto(backend: Backend, plan: RestorePlan): Promise<RestoreApplied> {
  // Register's rule checked inside the commit (import --atomic through a node, on etcd).
  if (plan.guard) return restoreGuarded(backend, plan);
  // A backend's own staged protocol first (a node, etcd; SQLite's staging table and one swap).
  if (backend.restoreAll) return backend.restoreAll(plan);
  if (backend.capabilities.synchronous && backend.transaction) {
    const before = plan.mode === 'replace' ? await backend.namespaces() : [];
    return backend.transaction(() => {
      let cleared = 0;
      for (const ns of before) cleared += backend.clearNamespace!(ns) as number;
      plan.forEachSync((e) => {
        const r = backend.register(e, always);
        if (r instanceof Promise) throw new Error('synchronous backend returned a Promise');
      });
      return { cleared };
    });
  }
  let cleared = 0;
  if (plan.mode === 'replace')
    for (const ns of await backend.namespaces()) cleared += await clearNamespace(backend, ns);
  for await (const batch of plan.batches(500)) {
    if (backend.bulkRegister) await backend.bulkRegister(batch, always);
    // Promise.resolve: a backend may answer synchronously (and a synchronous throw still stops the map).
    else await Promise.all(batch.map((e) => Promise.resolve(backend.register(e, always))));
  }
  return { cleared };
}
