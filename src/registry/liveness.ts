/**
 * Liveness of local processes (design §1): a pid is alive while it exists, is not a zombie and,
 * where a start time was recorded, still has that start time (pid reuse is a different process).
 *
 * Cost model: `kill(pid, 0)` is one syscall; reading /proc/<pid>/stat is an open+read+close. A
 * lookup must cost far less than either, so results are sampled at most once per pid per
 * *synchronous run* (cleared on the next microtask): within one run of JS nothing can observe a
 * death anyway (a process killed here is reaped only by a later event). The start time of a pid
 * is re-read at most every `startTtlMs` (a pid is not reused while its holder exists, and the
 * pid space does not wrap in a second).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { InvalidInputError } from '../backends/contract.js';

const ticks = 100; // USER_HZ: 100 on every Linux ABI Node runs on

export interface ProcInfo {
  /** Start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  start: number;
  /** Process state letter (R, S, D, Z, T...). */
  state: string;
}

/** Read /proc/<pid>/stat; undefined when the process does not exist (or /proc is absent). */
export function procInfo(pid: number): ProcInfo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parens: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  const [state = ''] = rest;
  return { state, start: Number(rest[19]) };
}

/** Does a process with this pid exist right now (zombies included)? One syscall. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a registered process may (not) be signalled now: see `signalTarget`. */
export type SignalCheck = 'ok' | 'gone' | 'reused' | 'unverifiable';

/**
 * Is the process holding `pid` now the one that was registered? Read fresh right before a signal
 * (docs/design.md §1, "signals"): it must run (not a zombie) and have the recorded start time; with
 * no start time recorded, it must have started before the registration (a reused pid starts after
 * the registered process died). 'unverifiable': neither is known, so a reuse cannot be ruled out.
 * Without /proc only existence can be checked ('ok' when the pid exists).
 */
export function signalTarget(pid: number, pidStart: number | null | undefined, registeredAt: number): SignalCheck {
  if (!pidExists(pid)) return 'gone';
  const info = procInfo(pid);
  if (info === undefined) return procInfo(process.pid) === undefined ? 'ok' : 'gone';
  if (info.state === 'Z' || info.state === 'X') return 'gone';
  if (pidStart != null) return info.start === pidStart ? 'ok' : 'reused';
  if (!(registeredAt > 0)) return 'unverifiable';
  // 1 s of slack: start times are in clock ticks and the boot time is estimated from the uptime.
  return startTicksToEpochMs(info.start) <= registeredAt + 1000 ? 'ok' : 'reused';
}

export class LocalLiveness {
  private epochCache = new Map<number, boolean>();
  private clearScheduled = false;
  private lastPid = -1;
  private lastAlive = false;
  private lastStart: number | null = null;
  private readonly epochStart = new Map<number, number>();
  private starts = new Map<number, { start: number; state: string; at: number }>();
  private readonly hasProc: boolean;

  constructor(private readonly startTtlMs = 1000) {
    this.hasProc = procInfo(process.pid) !== undefined;
  }

  private readonly clear = () => {
    this.epochCache.clear();
    this.epochStart.clear();
    this.lastPid = -1;
    this.clearScheduled = false;
  };

  /** The process start time, cached up to startTtlMs; undefined when it does not exist. */
  startOf(pid: number): number | undefined {
    if (!this.hasProc) return undefined;
    const info = this.procCached(pid);
    return info && info.state !== 'Z' ? info.start : undefined;
  }

  private procCached(pid: number): { start: number; state: string } | undefined {
    const now = Date.now();
    const c = this.starts.get(pid);
    if (c && now - c.at < this.startTtlMs) return c;
    const info = procInfo(pid);
    if (!info) {
      this.starts.delete(pid);
      return undefined;
    }
    if (this.starts.size > 65536) this.starts.clear();
    const v = { ...info, at: now };
    this.starts.set(pid, v);
    return v;
  }

  /** Is `pid` (with recorded start `pidStart`, if any) alive now? */
  isAlive(pid: number, pidStart?: number | null): boolean {
    const start = pidStart ?? null;
    // One-slot cache first: lookups in a burst usually hit the same process.
    if (pid === this.lastPid && start === this.lastStart) return this.lastAlive;
    const key = start === null ? pid : -pid; // separate slots with/without the start check
    let alive = this.epochCache.get(key);
    if (alive === undefined || (start !== null && this.epochStart.get(pid) !== start)) {
      alive = this.check(pid, start);
      this.epochCache.set(key, alive);
      if (start !== null) this.epochStart.set(pid, start);
      if (!this.clearScheduled) {
        this.clearScheduled = true;
        queueMicrotask(this.clear);
      }
    }
    this.lastPid = pid;
    this.lastStart = start;
    this.lastAlive = alive;
    return alive;
  }

  private check(pid: number, pidStart?: number | null): boolean {
    if (!pidExists(pid)) {
      this.starts.delete(pid);
      return false;
    }
    if (!this.hasProc) return true;
    const info = this.procCached(pid);
    if (!info) return false;
    if (info.state === 'Z' || info.state === 'X') {
      // A zombie is dead; re-read next time in case it was a stale cache entry.
      this.starts.delete(pid);
      return false;
    }
    if (pidStart != null && info.start !== pidStart) {
      // Maybe our cache is older than a reuse: confirm with a fresh read.
      const fresh = procInfo(pid);
      if (!fresh) return false;
      this.starts.set(pid, { ...fresh, at: Date.now() });
      return fresh.start === pidStart && fresh.state !== 'Z';
    }
    return true;
  }
}

/** Seconds since boot → epoch ms of a start-time in ticks (for display). */
export function startTicksToEpochMs(startTicks: number): number {
  const bootMs = Date.now() - os.uptime() * 1000;
  return Math.round(bootMs + (startTicks / ticks) * 1000);
}

/** A signal name (TERM, SIGHUP) or number (0..64) → what process.kill takes. */
export function parseSignal(text: string): NodeJS.Signals | number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 0 && n <= 64) return n;
  } else {
    const name = (
      text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`
    ) as NodeJS.Signals;
    if (name in os.constants.signals) return name;
  }
  throw new InvalidInputError(`unknown signal ${JSON.stringify(text)}: use a name like TERM, HUP, KILL or a number`);
}
