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
import type { Registration } from '../backends/contract.js';
import { compareKeys } from '../core/keys.js';
import type { ProcessRegistry } from '../registry/service.js';
import { liveEntries, type State, verifyStates, type VerifyReport } from './verify.js';

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

/** Batches being written at once to an asynchronous target (the next is read while they write; 3 keeps etcd busy across batch tails). */
const BATCHES_IN_FLIGHT = 3;

/**
 * The store a copy writes into: the service in front of it. Batches go through `overwrite`
 * (src/registry/service-store.ts: the target's native bulk path, concurrent chunks to a node).
 */
export type Target = Pick<ProcessRegistry, 'capabilities' | 'overwrite'>;

/** Copy every live entry of `source` into `target` (see the module comment). */
export async function copyState(source: State, target: Target, opts: CopyOptions = {}): Promise<CopyResult> {
  const t0 = performance.now();
  const size = opts.batch ?? 2000;
  const spaces = (opts.namespaces ?? (await source.namespaces())).slice().sort(compareKeys);
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
    const done = target.overwrite(batch);
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
  target: State & Target & Pick<ProcessRegistry, 'unregister'>,
  opts: { namespaces?: string[] } = {},
): Promise<SyncResult> {
  let written = 0;
  let removed = 0;
  const before = await verifyStates(source, target, {
    namespaces: opts.namespaces,
    maxDiffs: 20,
    onDiff: async (d) => {
      if (d.kind === 'onlyInA') {
        await target.overwrite([d.entry]);
        written++;
      } else if (d.kind === 'differing') {
        await target.overwrite([d.a]);
        written++;
      } else {
        const { namespace, key, pid, node } = d.entry;
        if (await target.unregister(key, { namespace, pid, node })) removed++;
      }
    },
  });
  return { written, removed, before };
}
