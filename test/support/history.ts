/**
 * Client histories for the linearizability checker (test/support/linearizability.ts).
 *
 * A history is a list of operations, each with its key, its input, its output (or `unknown`: the
 * call failed in a way that leaves open whether it took effect — a timeout, a lost answer, a killed
 * client) and its invoke and return times on a clock shared by every process of the run:
 * `process.hrtime.bigint()` (CLOCK_MONOTONIC on Linux: one clock for the whole machine), in ms.
 *
 * `Recorder.run()` wraps a call: it takes the invoke time, runs it, takes the return time and
 * records the output the caller maps the result or error to. Histories cross process boundaries
 * as JSON (`toJSON` / `fromJSON`: +Infinity has no JSON form, unknown returns are written as null).
 */
import type { Meta } from '../../src/backends/contract.js';

/** Milliseconds on the machine-wide monotonic clock (comparable across processes). */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export type Input =
  | { f: 'register'; pid: number; meta: Meta }
  | { f: 'lookup' }
  | { f: 'unregister'; pid?: number }
  | { f: 'meta'; meta: Meta; merge: boolean };

export type Output =
  | { ok: true } // register
  | { ok: false; holder: number } // register: conflict, naming the holder's pid
  | { found: false } // lookup, meta set: nothing there
  | { found: true; pid: number; meta: Meta } // lookup; meta set (the entry after the change)
  | { removed: boolean } // unregister
  | { unknown: true }; // may or may not have taken effect

export interface Operation {
  client: number;
  key: string;
  input: Input;
  output: Output;
  /** Invoke time (ms, shared clock). */
  call: number;
  /** Return time (ms, shared clock); +Infinity when the outcome is unknown. */
  ret: number;
}

export const UNKNOWN: Output = { unknown: true };

export class Recorder {
  readonly ops: Operation[] = [];

  /**
   * Record one call: `fn` runs it, `map` turns its result (or its error, as `{ error }`) into the
   * output. An `unknown` output gets return time +Infinity (it may take effect at any later time);
   * `null` (a call that certainly had no effect: refused before it reached the store) is not
   * recorded — it constrains nothing.
   */
  async run<T>(
    client: number,
    key: string,
    input: Input,
    fn: () => Promise<T>,
    map: (r: { value: T } | { error: unknown }) => Output | null,
  ): Promise<Output | null> {
    const call = now();
    let output: Output | null;
    try {
      const value = await fn();
      output = map({ value });
    } catch (error) {
      output = map({ error });
    }
    if (output === null) return null;
    const ret = 'unknown' in output ? Infinity : now();
    this.ops.push({ client, key, input, output, call, ret });
    return output;
  }

  /** A call whose client died before it answered. */
  pending(client: number, key: string, input: Input, call: number): void {
    this.ops.push({ client, key, input, output: UNKNOWN, call, ret: Infinity });
  }
}

export function toJSON(ops: Operation[]): string {
  return JSON.stringify(ops.map((o) => ({ ...o, ret: Number.isFinite(o.ret) ? o.ret : null })));
}

export function fromJSON(text: string): Operation[] {
  const raw = JSON.parse(text) as Array<Omit<Operation, 'ret'> & { ret: number | null }>;
  return raw.map((o) => ({ ...o, ret: o.ret === null ? Infinity : o.ret }));
}

/** One line per operation, for witnesses: `register(pid 12, {"v":3}) → conflict (holder 11)`. */
export function describe(o: Pick<Operation, 'input' | 'output'>): string {
  const i = o.input;
  const call =
    i.f === 'register'
      ? `register(pid ${i.pid}, ${JSON.stringify(i.meta)})`
      : i.f === 'lookup'
        ? 'lookup()'
        : i.f === 'unregister'
          ? i.pid === undefined
            ? 'unregister()'
            : `unregister(if pid ${i.pid})`
          : `meta ${i.merge ? 'merge' : 'set'}(${JSON.stringify(i.meta)})`;
  const out = o.output;
  const res =
    'unknown' in out
      ? 'outcome unknown'
      : 'removed' in out
        ? `removed ${out.removed}`
        : 'found' in out
          ? out.found
            ? `pid ${out.pid} ${JSON.stringify(out.meta)}`
            : 'not found'
          : out.ok
            ? 'ok'
            : `conflict (holder ${out.holder})`;
  return `${call} → ${res}`;
}
