/**
 * A linearizability checker for registry histories (test/support/history.ts), as porcupine and
 * Knossos do it:
 *
 * - P-compositionality: a history is linearizable iff the sub-history of every key is, so each
 *   key is checked on its own (the model is one key's state).
 * - Wing & Gong's search: walk the call/return events in time order; linearize a pending call
 *   whose output the model accepts from the current state, or backtrack when a return is reached
 *   whose call is not linearized yet.
 * - Lowe's memoisation: a configuration (set of linearized operations, model state) seen once
 *   is never explored again.
 *
 * The model of one key (unique ownership): `register` succeeds when the key is free or held by
 * the same pid (the metadata replaced) and a conflict names the holder; `lookup` returns the
 * holder and its metadata, or nothing; `unregister` is idempotent (removed true/false), with a pid
 * it removes only that pid's entry; `meta` replaces or merges (RFC 7386) the holder's metadata and
 * returns the entry, or nothing when the key is free. An operation with an unknown outcome may
 * have taken effect (at any time after its call: its return is +Infinity) or not at all.
 *
 * On a violation the result carries a small witness (see minimalWitness): operations that cannot
 * be ordered whatever the key held before them, printed with their times.
 */
import { canonicalJson } from '../../src/registry/digest.js';
import { mergePatch } from '../../src/registry/validate.js';
import type { Meta } from '../../src/backends/contract.js';
import { describe, type Operation } from './history.js';

/** One key's state: free, or held by a pid with metadata (kept as canonical JSON). */
type State = null | { pid: number; meta: string };

function stateId(s: State): string {
  return s === null ? '-' : `${s.pid}|${s.meta}`;
}

/** The state after `op` when the model accepts its output from `s`; undefined when it does not. */
export function step(s: State, op: Pick<Operation, 'input' | 'output'>): State | undefined {
  const { input: i, output: o } = op;
  const unknown = 'unknown' in o;
  switch (i.f) {
    case 'register': {
      if (s === null || s.pid === i.pid) {
        if (!unknown && !('ok' in o && o.ok)) return undefined;
        return { pid: i.pid, meta: canonicalJson(i.meta) };
      }
      if (unknown) return s; // a conflict changes nothing
      return 'ok' in o && !o.ok && o.holder === s.pid ? s : undefined;
    }
    case 'lookup': {
      if (unknown) return s;
      if (!('found' in o)) return undefined;
      if (s === null) return o.found ? undefined : s;
      return o.found && o.pid === s.pid && canonicalJson(o.meta) === s.meta ? s : undefined;
    }
    case 'unregister': {
      const hit = s !== null && (i.pid === undefined || s.pid === i.pid);
      if (!unknown && !('removed' in o && o.removed === hit)) return undefined;
      return hit ? null : s;
    }
    case 'meta': {
      if (s === null) return unknown || ('found' in o && !o.found) ? s : undefined;
      const meta = canonicalJson(i.merge ? mergePatch(JSON.parse(s.meta) as Meta, i.meta) : i.meta);
      if (!unknown && !('found' in o && o.found && o.pid === s.pid && canonicalJson(o.meta) === meta)) return undefined;
      return { pid: s.pid, meta };
    }
  }
}

interface Entry {
  /** Index of the operation in the key's history. */
  id: number;
  call: boolean;
  time: number;
  /** The call entry's return entry (and back). */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/**
 * The linearized operations: a bitset, with a 2×32-bit Zobrist hash over the operations of known
 * outcome only (equal sets are compared exactly).
 */
class Bits {
  readonly words: Uint32Array;
  h1 = 0;
  h2 = 0;
  constructor(
    n: number,
    private readonly z1: Uint32Array,
    private readonly z2: Uint32Array,
  ) {
    this.words = new Uint32Array(Math.ceil(n / 32));
  }
  flip(i: number): void {
    const w = i >>> 5;
    this.words[w] = (this.words[w] ?? 0) ^ (1 << (i & 31));
    this.h1 ^= this.z1[i] ?? 0;
    this.h2 ^= this.z2[i] ?? 0;
  }
}

/**
 * How much search one check may spend: `maxSteps` search steps per key (a step linearizes one
 * call, skips one, or backtracks once), and a wall-clock `deadline` (Date.now() ms) for the whole
 * check. The search is synchronous: a mocha timeout cannot stop it, the budget does.
 */
export interface Budget {
  maxSteps?: number;
  deadline?: number;
}

/**
 * Per key: 2 million steps (~15 s at the ~150k steps/s of a loaded 2-core machine; the scenarios'
 * histories need a few steps per operation); the whole check: 60 s.
 */
export const DEFAULT_MAX_STEPS = Number(process.env.CHECKER_MAX_STEPS ?? 2_000_000);
export const DEFAULT_MAX_MS = Number(process.env.CHECKER_MAX_MS ?? 60_000);

/** The verdict on one key: decided, or the budget ran out first (never a hang). */
export interface Search {
  verdict: 'linearizable' | 'violation' | 'undecided';
  /** Search steps taken. */
  steps: number;
  /** Configurations kept in the memo (Lowe's cache). */
  memo: number;
}

/** Whether one key's operations are linearizable (throws when the default budget runs out). */
export function linearizableKey(all: readonly Operation[], initial: State = null): boolean {
  const r = searchKey(all, initial);
  if (r.verdict === 'undecided') throw new Error(`undecided (budget exhausted after ${r.steps} steps)`);
  return r.verdict === 'linearizable';
}

/** Wing & Gong's search with Lowe's cache over one key's operations, within a budget. */
export function searchKey(all: readonly Operation[], initial: State = null, budget: Budget = {}): Search {
  const maxSteps = budget.maxSteps ?? DEFAULT_MAX_STEPS;
  const deadline = budget.deadline ?? Date.now() + DEFAULT_MAX_MS;
  let steps = 0;
  let memo = 0;
  const done = (verdict: Search['verdict']): Search => ({ verdict, steps, memo });
  // A lookup of unknown outcome changes nothing and constrains nothing.
  const ops = all.filter((o) => !('unknown' in o.output && o.input.f === 'lookup'));
  const n = ops.length;
  if (n === 0) return done('linearizable');
  const isUnknown = ops.map((o) => 'unknown' in o.output);
  // Events in time order; at equal times calls first (such operations are taken as overlapping).
  const events: Entry[] = [];
  ops.forEach((o, id) => {
    const c: Entry = { id, call: true, time: o.call, match: null, prev: null, next: null };
    const r: Entry = { id, call: false, time: o.ret, match: c, prev: null, next: null };
    c.match = r;
    events.push(c, r);
  });
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? 0 : a.call ? -1 : 1));
  const head: Entry = { id: -1, call: false, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  const lift = (e: Entry): void => {
    if (e.prev) e.prev.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match;
    if (m) {
      if (m.prev) m.prev.next = m.next;
      if (m.next) m.next.prev = m.prev;
    }
  };
  const unlift = (e: Entry): void => {
    const m = e.match;
    if (m) {
      if (m.prev) m.prev.next = m;
      if (m.next) m.next.prev = m;
    }
    if (e.prev) e.prev.next = e;
    if (e.next) e.next.prev = e;
  };

  const rand = (): Uint32Array => {
    const a = new Uint32Array(n);
    let x = 0x9e3779b9 ^ n;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      a[i] = x >>> 0;
    }
    return a;
  };
  // Operations of unknown outcome hash to 0: configurations differing only in which of them were
  // applied share a slot, and one that applied a subset of another's (same state, same known
  // operations) dominates it — it can still apply the rest later — so the other is pruned.
  const z1 = rand();
  const z2 = rand().map((x) => x ^ 0x5bd1e995);
  isUnknown.forEach((u, i) => {
    if (u) z1[i] = z2[i] = 0;
  });
  const bits = new Bits(n, z1, z2);
  const unknownMask = new Uint32Array(bits.words.length);
  isUnknown.forEach((u, i) => {
    if (u) unknownMask[i >>> 5] = (unknownMask[i >>> 5] ?? 0) | (1 << (i & 31));
  });
  const seen = new Map<string, Array<Uint32Array>>();
  /** Add (bits, state) to the cache; false when it (or a configuration dominating it) was there. */
  const remember = (s: State): boolean => {
    const k = `${bits.h1}:${bits.h2}:${stateId(s)}`;
    const w = bits.words;
    const list = seen.get(k);
    if (list) {
      for (const old of list) {
        let dominated = true;
        for (let i = 0; i < w.length && dominated; i++) {
          const m = unknownMask[i] ?? 0;
          const a = old[i] ?? 0;
          const b = w[i] ?? 0;
          // known bits equal; the old configuration's unknown bits a subset of ours
          if ((a & ~m) !== (b & ~m) || (a & m & ~b) !== 0) dominated = false;
        }
        if (dominated) return false;
      }
      list.push(w.slice());
    } else seen.set(k, [w.slice()]);
    memo++;
    return true;
  };

  const calls: Array<{ entry: Entry; state: State }> = [];
  let state: State = initial;
  let entry = head.next;
  while (entry) {
    if (++steps > maxSteps || ((steps & 0xfff) === 0 && Date.now() > deadline)) return done('undecided');
    if (entry.call) {
      const op = ops[entry.id];
      const next: State | undefined = op === undefined ? undefined : step(state, op);
      if (next !== undefined) {
        bits.flip(entry.id);
        if (remember(next)) {
          calls.push({ entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits.flip(entry.id);
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized. At +Infinity only operations of unknown outcome are
      // left: they may never have taken effect, so the history so far is explained.
      if (entry.time === Infinity) return done('linearizable');
      const top = calls.pop();
      if (!top) return done('violation');
      state = top.state;
      bits.flip(top.entry.id);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return done('linearizable');
}

export interface Violation {
  key: string;
  /** Operations of the key in the history. */
  total: number;
  /** A few operations of the key that cannot be ordered (a minimal failing set found greedily). */
  witness: Operation[];
  /** Printable: the witness with times relative to `origin` (ms). */
  text: string;
}

/** A key whose check ran out of budget: neither shown linearizable nor shown not to be. */
export interface Undecided {
  key: string;
  /** Operations of the key, and how many of them of unknown outcome. */
  total: number;
  unknown: number;
  steps: number;
  text: string;
}

export interface CheckResult {
  /** Every key shown linearizable (a key left undecided is not ok). */
  ok: boolean;
  operations: number;
  keys: number;
  /** Operations whose outcome was unknown. */
  unknown: number;
  /** Search steps over all keys, and the largest memo of one key. */
  steps: number;
  memo: number;
  violations: Violation[];
  undecided: Undecided[];
}

const isUnknownOp = (o: Operation): boolean => 'unknown' in o.output;

/**
 * Check a whole history: per key (P-compositionality), each key's search within `budget`
 * (default: DEFAULT_MAX_STEPS per key, DEFAULT_MAX_MS for the whole check); witnesses for the
 * keys that fail, an "undecided" entry for the keys whose budget ran out.
 */
export function checkHistory(ops: readonly Operation[], budget: Budget = {}): CheckResult {
  const byKey = new Map<string, Operation[]>();
  for (const o of ops) {
    const list = byKey.get(o.key);
    if (list) list.push(o);
    else byKey.set(o.key, [o]);
  }
  const deadline = budget.deadline ?? Date.now() + DEFAULT_MAX_MS;
  const origin = Math.min(...ops.map((o) => o.call));
  const violations: Violation[] = [];
  const undecided: Undecided[] = [];
  let steps = 0;
  let memo = 0;
  for (const [key, list] of byKey) {
    const r = searchKey(list, null, { maxSteps: budget.maxSteps, deadline });
    steps += r.steps;
    memo = Math.max(memo, r.memo);
    if (r.verdict === 'linearizable') continue;
    if (r.verdict === 'undecided') {
      const unknown = list.filter(isUnknownOp).length;
      undecided.push({
        key,
        total: list.length,
        unknown,
        steps: r.steps,
        text: `key ${JSON.stringify(key)}: undecided (budget exhausted after ${r.steps} steps; ${list.length} operations, ${unknown} of unknown outcome)`,
      });
      continue;
    }
    const witness = minimalWitness(list);
    violations.push({ key, total: list.length, witness, text: render(key, list.length, witness, origin) });
  }
  return {
    ok: violations.length === 0 && undecided.length === 0,
    operations: ops.length,
    keys: byKey.size,
    unknown: ops.filter(isUnknownOp).length,
    steps,
    memo,
    violations,
    undecided,
  };
}

/**
 * The states a key can have been left in by `before` (free, or what one of its writes wrote: a
 * register's pid and metadata, a metadata change's result; a metadata change of unknown outcome
 * can leave anything, so then every entry a read returned too).
 */
function statesLeftBy(before: readonly Operation[]): State[] {
  const states = new Map<string, State>([['-', null]]);
  const add = (pid: number, meta: Meta): void => {
    const st = { pid, meta: canonicalJson(meta) };
    states.set(stateId(st), st);
  };
  const loose = before.some((o) => o.input.f === 'meta' && 'unknown' in o.output);
  for (const o of before) {
    if (o.input.f === 'register') add(o.input.pid, o.input.meta);
    if ((o.input.f === 'meta' || loose) && 'found' in o.output && o.output.found) add(o.output.pid, o.output.meta);
  }
  return [...states.values()];
}

/** An operation that, with its output, cannot have changed the key (removing it keeps a failure a failure). */
function readOnly(o: Operation): boolean {
  const out = o.output;
  if ('unknown' in out) return o.input.f === 'lookup';
  if (o.input.f === 'lookup') return true;
  if ('ok' in out) return !out.ok;
  if ('removed' in out) return !out.removed;
  return 'found' in out && !out.found;
}

/**
 * A small set of one key's operations that cannot be ordered. The shortest failing prefix of the
 * history (operations called before the first return at which it stops being linearizable; later
 * returns become unknown); of it, the operations after the latest moment when none was in flight
 * such that they fail whatever the operations before it can have left in the key; then, greedily, without every
 * operation that changed nothing (a read, a refused write) whose absence keeps them failing.
 * Each step keeps the claim sound: no operation that could explain the others is dropped, and a
 * search that runs out of budget never counts as a failure (the set just stays larger).
 */
export function minimalWitness(ops: readonly Operation[], maxMs = 20_000): Operation[] {
  const deadline = Date.now() + maxMs;
  /** Shown to fail from every one of the initial states (undecided: not shown). */
  const fails = (x: readonly Operation[], from: readonly State[] = [null]): boolean =>
    from.every((st) => searchKey(x, st, { deadline }).verdict === 'violation');
  const returns = [...new Set(ops.map((o) => o.ret).filter((t) => Number.isFinite(t)))].sort((a, b) => a - b);
  const prefix = (t: number): Operation[] =>
    ops.filter((o) => o.call <= t).map((o) => (o.ret <= t ? o : { ...o, output: { unknown: true }, ret: Infinity }));
  // Binary search for the first return time t at which prefix(t) is shown not linearizable.
  let lo = 0;
  let hi = returns.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (!fails(prefix(returns[mid] ?? Infinity))) lo = mid + 1;
    else hi = mid;
  }
  const failing = prefix(returns[lo] ?? Infinity).sort((a, b) => a.call - b.call);
  if (!fails(failing)) return [...ops]; // only when the budget ran out: the whole history is the witness
  // Quiescent points: a call after which every earlier operation had returned.
  let set: Operation[] = failing;
  let from: State[] = [null];
  // (An operation of unknown outcome may still take effect later: it stays in the tail, and what
  // it would have written counts among the states the operations before can have left.)
  let lastRet = -Infinity;
  const quiet: number[] = [];
  failing.forEach((o, i) => {
    if (i > 0 && o.call > lastRet) quiet.push(i);
    lastRet = Math.max(lastRet, Number.isFinite(o.ret) ? o.ret : o.call);
  });
  for (const i of quiet.reverse()) {
    const before = failing.slice(0, i);
    const tail = [...before.filter((o) => !Number.isFinite(o.ret)), ...failing.slice(i)];
    const states = statesLeftBy(before);
    if (fails(tail, states)) {
      set = tail;
      from = states;
      break;
    }
  }
  for (let i = set.length - 1; i >= 0 && set.length <= 400 && Date.now() < deadline; i--) {
    const o = set[i];
    if (o === undefined || !readOnly(o)) continue;
    const without: Operation[] = set.filter((_, j) => j !== i);
    if (fails(without, from)) set = without;
  }
  return set;
}

function render(key: string, total: number, witness: Operation[], origin: number): string {
  const fmt = (t: number): string => (Number.isFinite(t) ? `+${(t - origin).toFixed(3)}` : '     never');
  const lines = witness.map(
    (o) =>
      `  client ${String(o.client).padStart(2)}  [${fmt(o.call).padStart(11)} → ${fmt(o.ret).padStart(11)} ms]  ${describe(o)}`,
  );
  return `key ${JSON.stringify(key)} is not linearizable (${total} operations); these ${witness.length} cannot be ordered:\n${lines.join('\n')}`;
}

/**
 * Throw with every violation's witness, and every key left undecided (budget exhausted: a failure
 * too, never a hang), unless the history is shown linearizable.
 */
export function assertLinearizable(ops: readonly Operation[], what: string, budget: Budget = {}): CheckResult {
  const r = checkHistory(ops, budget);
  if (!r.ok) {
    const verdict = r.violations.length ? 'NOT linearizable' : 'undecided';
    throw new Error(
      `${what}: history ${verdict} (${r.operations} operations, ${r.keys} keys, ${r.unknown} of unknown outcome)\n${[
        ...r.violations,
        ...r.undecided,
      ]
        .map((v) => v.text)
        .join('\n')}`,
    );
  }
  return r;
}
