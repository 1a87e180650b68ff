/** Real OS processes for liveness tests: spawn sleepers, kill them, wait for them to be gone. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { pidExists } from '../../src/registry/liveness.js';

export interface Sleeper {
  pid: number;
  child: ChildProcess;
  /** SIGKILL and wait until the pid is gone (reaped). */
  kill(): Promise<void>;
}

const all = new Set<ChildProcess>();

/** A process that sleeps until killed (or 10 minutes). */
export async function spawnSleeper(): Promise<Sleeper> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
  all.add(child);
  await once(child, 'spawn');
  const exited = once(child, 'exit');
  return {
    pid: child.pid!,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      all.delete(child);
      await waitFor(() => !pidExists(child.pid!), 10_000, `pid ${child.pid} to disappear`);
    },
  };
}

/** `N` copies of `T` as a tuple, so `const [a, b] = await spawnSleepers(2)` needs no checks. */
export type Tuple<T, N extends number, Acc extends T[] = []> = number extends N
  ? T[]
  : Acc['length'] extends N
    ? Acc
    : Tuple<T, N, [...Acc, T]>;

/** `n` sleepers; with a literal `n` the result is typed as a tuple of exactly `n`. */
export async function spawnSleepers<N extends number>(n: N): Promise<Tuple<Sleeper, N>> {
  const sleepers = await Promise.all(Array.from({ length: n }, () => spawnSleeper()));
  if (sleepers.length !== n) throw new Error(`spawned ${sleepers.length} sleepers, wanted ${n}`);
  return sleepers as Tuple<Sleeper, N>;
}

/** Kill every sleeper still running (test teardown). */
export async function killAllSleepers(): Promise<void> {
  const waits = [...all].map(async (c) => {
    if (c.exitCode === null && c.signalCode === null) {
      const e = once(c, 'exit');
      c.kill('SIGKILL');
      await e;
    }
  });
  all.clear();
  await Promise.all(waits);
}

/** Poll `cond` every 20 ms until true or `timeoutMs` passes. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A pid that is certainly not running (a reaped child's). */
export async function deadPid(): Promise<number> {
  const s = await spawnSleeper();
  await s.kill();
  return s.pid;
}
