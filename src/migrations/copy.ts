/**
 * Copy and repair between any two states, in bounded memory (one page at a time).
 *
 * - `copyState` streams every live entry of the source (key order, per namespace) into the
 *   target, overwriting what the target holds for those keys (the source is the truth), and calls
 *   `onBatch` with a resumable cursor after each written batch: a killed copy restarts from the
 *   last cursor and rewrites at most one batch (idempotent: keys are unique, nothing duplicates).
 * - `syncState` makes the target equal to the source with the verify machinery: only mismatching
 *   buckets are read, differing and missing keys are rewritten, extra keys removed.
 */
import type { Backend, Registration, RegisterOptions } from '../backends/contract.js';
import { asRegistryError } from '../backends/contract.js';
import { liveEntries, type State, verifyStates, type VerifyReport } from './verify.js';
import { compareKeys } from '../registry/validate.js';

/** Where a copy stands: the namespace being copied and the last key written in it. */
export interface CopyCursor {
  namespace: string;
  after?: string;
  /** Entries written so far (all namespaces). */
  copied: number;
}

export interface CopyOptions {
  /** Namespaces (default: every namespace of the source). */
  namespaces?: string[];
  /** Resume from here (namespaces before `cursor.namespace` are done). */
  cursor?: CopyCursor;
  /** Entries per write batch (default 2000). */
  batch?: number;
  /** After each batch is durable in the target. */
  onBatch?(cursor: CopyCursor): void | Promise<void>;
}

export interface CopyResult {
  copied: number;
  namespaces: string[];
  durationMs: number;
}

/** The source is the truth: overwrite whatever the target holds. */
const overwrite: RegisterOptions = { replaceIf: () => true };

/** Chunks written concurrently to an asynchronous (networked) target: round trips overlap. */
const CONCURRENT_CHUNKS = 16;

/** Batches being written at once to an asynchronous target (the next is read while they write; 3 keeps etcd busy across batch tails). */
const BATCHES_IN_FLIGHT = 3;

/**
 * Write a batch with the target's native bulk path when it has one. A local native bulk path
 * (etcd: full-size txns, several in flight) gets the whole batch; a remote node or a target
 * without one gets it as concurrent chunks (keys are distinct, so order between chunks does not
 * matter, and a request stays small); the batch is complete when this resolves, so a journaled
 * cursor never runs ahead of the data.
 */
export async function writeBatch(target: Backend, batch: Registration[]): Promise<void> {
  if (batch.length === 0) return;
  const chunked = !target.capabilities.synchronous && (target.capabilities.remote || !target.bulkRegister);
  if (chunked && batch.length >= 2 * CONCURRENT_CHUNKS) {
    const size = Math.ceil(batch.length / CONCURRENT_CHUNKS);
    const chunks: Registration[][] = [];
    for (let i = 0; i < batch.length; i += size) chunks.push(batch.slice(i, i + size));
    await Promise.all(chunks.map((c) => writeSerial(target, c)));
    return;
  }
  return writeSerial(target, batch);
}

async function writeSerial(target: Backend, batch: Registration[]): Promise<void> {
  if (target.bulkRegister) {
    const results = await target.bulkRegister(batch, overwrite);
    for (const [i, r] of results.entries()) {
      if (r.ok) continue;
      throw 'error' in r ? r.error : asRegistryError(new Error(`target refused ${JSON.stringify(batch[i]?.key)}`));
    }
    return;
  }
  for (const e of batch) {
    const r = await target.register(e, overwrite);
    if (!r.ok) throw asRegistryError(new Error(`target refused to overwrite ${e.namespace}/${e.key}`));
  }
}

export async function copyState(source: State, target: Backend, opts: CopyOptions = {}): Promise<CopyResult> {
  const t0 = performance.now();
  const size = opts.batch ?? 2000;
  const spaces = (opts.namespaces ?? (await source.backend.namespaces())).slice().sort(compareKeys);
  let copied = opts.cursor?.copied ?? 0;
  let started = !opts.cursor;
  // Writes in flight, oldest first; a cursor is reported only once its batch and every earlier
  // one are written, so a resumed copy never skips data.
  const depth = target.capabilities.synchronous ? 1 : BATCHES_IN_FLIGHT;
  const inflight: Array<{ done: Promise<void>; cursor: CopyCursor }> = [];
  const settleOldest = async (): Promise<void> => {
    const oldest = inflight[0];
    if (oldest === undefined) return; // nothing in flight
    const { done, cursor } = oldest;
    try {
      await done;
    } catch (err) {
      await Promise.allSettled(inflight.map((w) => w.done));
      inflight.length = 0;
      throw err;
    }
    inflight.shift();
    await opts.onBatch?.(cursor);
  };
  const submit = async (namespace: string, batch: Registration[], after: string | undefined): Promise<void> => {
    copied += batch.length;
    const done = writeBatch(target, batch);
    done.catch(() => undefined); // observed in settleOldest
    inflight.push({ done, cursor: { namespace, after: batch.at(-1)?.key ?? after, copied } });
    while (inflight.length >= depth) await settleOldest();
  };
  try {
    for (const namespace of spaces) {
      let after: string | undefined;
      if (!started) {
        if (namespace !== opts.cursor!.namespace) {
          if (compareKeys(namespace, opts.cursor!.namespace) < 0) continue;
        } else after = opts.cursor!.after;
        started = true;
      }
      let batch: Registration[] = [];
      for await (const e of liveEntries(source, namespace, { after, pageSize: size })) {
        batch.push(e);
        if (batch.length >= size) {
          await submit(namespace, batch, after);
          batch = [];
        }
      }
      await submit(namespace, batch, after);
    }
    while (inflight.length) await settleOldest();
  } finally {
    await Promise.allSettled(inflight.map((w) => w.done));
  }
  return { copied, namespaces: spaces, durationMs: Math.round(performance.now() - t0) };
}

export interface SyncResult {
  written: number;
  removed: number;
  /** The comparison before the repair. */
  before: VerifyReport;
}

/** Make `target` equal to `source` (differing/missing keys rewritten, extra keys removed). */
export async function syncState(
  source: State,
  target: State,
  opts: { namespaces?: string[] } = {},
): Promise<SyncResult> {
  let written = 0;
  let removed = 0;
  const before = await verifyStates(source, target, {
    namespaces: opts.namespaces,
    maxDiffs: 20,
    onDiff: async (d) => {
      if (d.kind === 'onlyInA') {
        await writeBatch(target.backend, [d.entry]);
        written++;
      } else if (d.kind === 'differing') {
        await writeBatch(target.backend, [d.a]);
        written++;
      } else {
        if (await target.backend.unregister(d.entry.namespace, d.entry.key, { pid: d.entry.pid, node: d.entry.node }))
          removed++;
      }
    },
  });
  return { written, removed, before };
}
