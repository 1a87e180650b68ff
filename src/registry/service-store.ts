/**
 * The service's store operations over a backend: the one home of the cursor loop (`pages`), of
 * the fallbacks for optional contract methods (`digest`, `clearNamespace`, `restoreAll`, a bulk
 * overwrite), and of the compare-and-swap replace rule. The service (src/registry/service-base.ts,
 * service.ts) exposes them as methods and its sweep (sweep.ts) pages with them; everything above
 * the service (dump, the node, verify, the migrations) asks the service. Nothing else pages
 * through a backend by hand.
 */
import type {
  Backend,
  BucketDigests,
  DigestPlan,
  ListOptions,
  Page,
  RegisterOptions,
  Registration,
  RestoreApplied,
  RestorePlan,
} from '../backends/contract.js';
import { asRegistryError, InvalidInputError } from '../backends/contract.js';
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

/** A backend's digester of several namespaces off the caller's thread (`offThreadDigests?()`). */
export type OffThreadDigester = (plan: DigestPlan) => Promise<Map<string, BucketDigests>>;

/** Chunks written concurrently to an asynchronous (networked) target: round trips overlap. */
const CONCURRENT_CHUNKS = 16;

/**
 * Overwrite a batch of complete entries (a copy or a repair: the source is the truth) with the
 * target's native bulk path when it has one. A local native bulk path (etcd: full-size txns,
 * several in flight) gets the whole batch; a remote node or a target without one gets it as
 * concurrent chunks (keys are distinct, so order between chunks does not matter, and a request
 * stays small); the batch is complete when this resolves, so a journaled cursor never runs ahead
 * of the data. The first entry refused is thrown.
 */
export async function overwriteBatch(target: Backend, batch: Registration[]): Promise<void> {
  if (batch.length === 0) return;
  const chunked = !target.capabilities.synchronous && (target.capabilities.remote || !target.bulkRegister);
  if (chunked && batch.length >= 2 * CONCURRENT_CHUNKS) {
    const size = Math.ceil(batch.length / CONCURRENT_CHUNKS);
    const chunks: Registration[][] = [];
    for (let i = 0; i < batch.length; i += size) chunks.push(batch.slice(i, i + size));
    await Promise.all(chunks.map((c) => overwriteSerial(target, c)));
    return;
  }
  return overwriteSerial(target, batch);
}

async function overwriteSerial(target: Backend, batch: Registration[]): Promise<void> {
  if (target.bulkRegister) {
    const results = await target.bulkRegister(batch, always);
    for (const [i, r] of results.entries()) {
      if (r.ok) continue;
      throw 'error' in r ? r.error : asRegistryError(new Error(`target refused ${JSON.stringify(batch[i]?.key)}`));
    }
    return;
  }
  for (const e of batch) {
    const r = await target.register(e, always);
    if (!r.ok) throw asRegistryError(new Error(`target refused to overwrite ${e.namespace}/${e.key}`));
  }
}
