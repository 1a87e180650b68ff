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
import type { Backend, ProcessSummary } from '../backends/contract.js';

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
