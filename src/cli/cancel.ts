/**
 * Cancellation of long commands run by the REPL (Ctrl-C aborts `RegistryCommand.session.signal`).
 * One-shot commands have no signal: SIGINT ends the process as usual.
 */
import { TimeoutError } from '../backends/contract.js';

/** Throw when the REPL cancelled the running command (exit 3 outside the REPL; the REPL shows 130). */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new TimeoutError(`${what}: cancelled`);
}

/** Sleep `ms`, cut short when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Let pending I/O (a Ctrl-C) be seen between pages of a long loop on a synchronous backend,
 * whose promises alone never yield to the event loop. Only when there is a signal to watch.
 */
export async function yieldIfWatched(signal: AbortSignal | undefined): Promise<void> {
  if (signal) await new Promise((r) => setImmediate(r));
}
