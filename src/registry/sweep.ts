/**
 * The incremental sweep (issue 14 §7): remove the registrations of this node's dead processes
 * without holding the event loop. The backend's (node, pid, pid_start) index is walked one
 * process at a time (`processesAfter`), each process judged once, a dead one's entries removed in
 * bounded chunks (`removeProcessEntries`); the loop yields (setImmediate) whenever a slice has run
 * for `sliceMs`, so timers, requests and lookups run between slices.
 *
 * Writes between slices are fine: the walk continues after the last process seen (a process
 * added behind the cursor waits for the next sweep; its entries are alive anyway, or a lookup
 * finds them dead lazily). A backend without the slice methods gets the one-shot
 * `processes`/`removeProcesses` sweep.
 */
import type { Backend, ProcessSummary, Registration, SweepResult } from '../backends/contract.js';
import { roundMs } from '../core/time.js';
import { pages } from './service-store.js';

/** Processes asked for per backend call. */
const PROCS_PER_CALL = 64;
/** Entries of one dead process removed per statement. */
const ROWS_PER_DELETE = 1000;
/** A slice runs this long before it yields. */
const SLICE_MS = 4;

export interface SweepOptions {
  /** Run at most this long before yielding to the event loop (ms; default 4). */
  sliceMs?: number;
  /** Stop early (the service closed): answers what was done so far. */
  stopped?: () => boolean;
}

/** Yield to the event loop when the current slice has run `sliceMs` (timers and I/O run first). */
export class Slicer {
  private start = performance.now();
  constructor(private readonly sliceMs = SLICE_MS) {}

  /** The slice has run its time. */
  due(): boolean {
    return performance.now() - this.start >= this.sliceMs;
  }

  /** Yield now (setImmediate: after pending I/O and expired timers), then start a new slice. */
  async yield(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.start = performance.now();
  }

  /** Yield if the slice is due. */
  async maybe(): Promise<void> {
    if (this.due()) await this.yield();
  }
}

/** Sweep `node`'s dead processes from `backend`: how many processes were judged, entries removed. */
export async function sweepProcesses(
  backend: Backend,
  node: string,
  isAlive: (pid: number, pidStart: number | null) => boolean,
  opts: SweepOptions = {},
): Promise<{ checked: number; removed: number }> {
  let checked = 0;
  let removed = 0;
  if (!backend.processesAfter || !backend.removeProcessEntries) {
    const procs = await backend.processes!(node);
    const dead = procs.filter((p) => !isAlive(p.pid, p.pidStart));
    if (dead.length) removed = await backend.removeProcesses!(node, dead);
    return { checked: procs.length, removed };
  }
  const slicer = new Slicer(opts.sliceMs);
  let after: Pick<ProcessSummary, 'pid' | 'pidStart'> | undefined;
  for (;;) {
    if (opts.stopped?.()) break;
    const procs = await backend.processesAfter(node, after, PROCS_PER_CALL);
    for (const p of procs) {
      checked++;
      if (!isAlive(p.pid, p.pidStart)) {
        for (;;) {
          const n = await backend.removeProcessEntries(node, p, ROWS_PER_DELETE);
          removed += n;
          if (n < ROWS_PER_DELETE || opts.stopped?.()) break;
          await slicer.maybe();
        }
      }
      await slicer.maybe();
    }
    if (procs.length < PROCS_PER_CALL) break;
    after = procs.at(-1);
  }
  return { checked, removed };
}

/** What a sweep needs of the service in front of the backend (src/registry/service.ts). */
export interface SweepHost {
  readonly backend: Backend;
  /** This node name: its entries are the ones judged here. */
  readonly nodeName: string;
  /** The service judges liveness itself (false through a node: the node sweeps its own). */
  readonly judgeLocally: boolean;
  isAlive(e: Registration): boolean;
  /** Is this local process (pid and start time) running? */
  pidAlive(pid: number, pidStart: number | null): boolean;
  /** Compare-and-delete a dead entry: true when it was removed. */
  removeDead(e: Registration): Promise<boolean> | boolean;
  /** The service closed: stop early. */
  stopped(): boolean;
}

/**
 * One sweep of the dead registrations of this node name: a node sweeps its own (and a client
 * whose node name differs from the node's sweeps its own entries by listing); a backend with a
 * process index is walked process by process (sweepProcesses); any other is listed page by page.
 */
export async function sweepOnce(host: SweepHost): Promise<SweepResult> {
  const t0 = performance.now();
  let checked = 0;
  let removed = 0;
  const { backend } = host;
  if (!host.judgeLocally && backend.cleanup) {
    const r = await backend.cleanup();
    // The node swept its own node name; entries of ours (a client on another host) are ours to sweep.
    const own = (r as SweepResult & { node?: string }).node === host.nodeName ? undefined : await sweepOwn(host, false);
    return own ? { ...r, checked: r.checked + own.checked, removed: r.removed + own.removed } : r;
  }
  if (backend.processes && backend.removeProcesses) {
    ({ checked, removed } = await sweepProcesses(backend, host.nodeName, (pid, start) => host.pidAlive(pid, start), {
      stopped: () => host.stopped(),
    }));
  } else ({ checked, removed } = await sweepOwn(host, true));
  const at = Date.now();
  await backend.markCleanup?.(at);
  // Hundredths of a millisecond: what a clock reading means, not 2.627536999999961.
  return { checked, removed, at, durationMs: roundMs(performance.now() - t0) };
}

/** Page through every namespace and remove the dead entries of this node name (checked: all entries, or only ours). */
async function sweepOwn(host: SweepHost, countOthers = true): Promise<{ checked: number; removed: number }> {
  let checked = 0;
  let removed = 0;
  // The cursor is a key, so removing entries of a page already read does not move it.
  for (const namespace of await host.backend.namespaces())
    for await (const page of pages(host.backend, namespace, { pageSize: 1000 }))
      for (const e of page.items) {
        if (e.node !== host.nodeName && !countOthers) continue;
        checked++;
        if (!host.isAlive(e) && (await host.removeDead(e))) removed++;
      }
  return { checked, removed };
}
