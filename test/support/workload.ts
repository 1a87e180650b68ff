/**
 * The random workload of the linearizability scenarios (test/scenarios/): clients issue register /
 * lookup / unregister (unconditional and conditional) / meta set|merge on a few keys through the
 * library API, and a Recorder keeps their history for the checker.
 *
 * An answer the API defines (ok, AlreadyRegisteredError naming the holder, NotFoundError, removed
 * true/false, the entry) is recorded as such. A failure the API defines as "certainly not applied"
 * (UnreachableError without `details.outcome: 'unknown'`: the store or node was not reached, or
 * refused it) is left out of the history, and so is any failed lookup: they constrain nothing, and
 * keeping them as unknown outcomes would only grow the search. Any other error (OutcomeUnknownError,
 * an unexpected one) is recorded as an outcome unknown: the operation may or may not have happened.
 * The checker then holds the product to its word: a write reported "not applied" that was applied
 * shows up as a violation.
 */
import {
  AlreadyRegisteredError,
  NotFoundError,
  type Registration,
  UnreachableError,
} from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
import { type Input, type Output, Recorder, UNKNOWN } from './history.js';

/** mulberry32: a small seeded generator (scenarios replay from their seed). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  /** The API each client calls through (one registry per client, or shared). */
  clients: ProcessRegistry[];
  /** Client numbers as recorded (default 0..n-1; several processes use disjoint ranges). */
  ids?: number[];
  keys: string[];
  /** Live pids to register (the model's owners). */
  pids: number[];
  durationMs: number;
  seed: number;
  recorder?: Recorder;
  /** Pause after an error (the store may be down), ms (default 50). */
  backoffMs?: number;
  /** Stop once the history holds this many operations (keeps a fast backend's history checkable). */
  maxOps?: number;
  /** Wall-clock end of the run: clients stop issuing at this Date.now() (default now + durationMs). */
  until?: number;
  /** Stop early when this turns true (checked before every call): a run paced by its faults. */
  stop?: () => boolean;
}

export interface WorkloadResult {
  recorder: Recorder;
  /** Errors recorded as unknown outcomes, by message head (for the test log). */
  errors: Map<string, number>;
}

/** Run one client's loop until the deadline; errors never stop it. */
export async function runWorkload(o: WorkloadOptions): Promise<WorkloadResult> {
  const recorder = o.recorder ?? new Recorder();
  const errors = new Map<string, number>();
  const until = o.until ?? Date.now() + o.durationMs;
  const backoff = o.backoffMs ?? 50;
  const one = async (reg: ProcessRegistry, client: number, rand: () => number): Promise<void> => {
    let seq = 0;
    const pick = <T>(xs: T[]): T => {
      const x = xs[Math.floor(rand() * xs.length)];
      if (x === undefined) throw new Error('empty choice');
      return x;
    };
    while (Date.now() < until && !o.stop?.()) {
      seq++;
      const key = pick(o.keys);
      const pid = pick(o.pids);
      const r = rand();
      let failed = false;
      let input: Input;
      const unknown = (error: unknown): Output | null => {
        failed = true;
        const notApplied =
          input.f === 'lookup' ||
          (error instanceof UnreachableError &&
            (error.details as { outcome?: unknown } | undefined)?.outcome !== 'unknown');
        const msg = `${notApplied ? '(not applied) ' : ''}${error instanceof Error ? `${error.name}: ${error.message.replace(/\/v1\/\S+/, '…').slice(0, 60)}` : String(error)}`;
        errors.set(msg, (errors.get(msg) ?? 0) + 1);
        return notApplied ? null : UNKNOWN;
      };
      const entry = (e: Registration | undefined): Output =>
        e ? { found: true, pid: e.pid, meta: e.meta } : { found: false };
      if (r < 0.3) {
        const meta = { c: client, n: seq };
        input = { f: 'register', pid, meta };
        await recorder.run(
          client,
          key,
          input,
          () => reg.register(key, pid, meta),
          (x) =>
            'value' in x
              ? { ok: true }
              : x.error instanceof AlreadyRegisteredError
                ? { ok: false, holder: x.error.holder.pid }
                : unknown(x.error),
        );
      } else if (r < 0.6) {
        input = { f: 'lookup' };
        await recorder.run(
          client,
          key,
          input,
          () => reg.lookup(key),
          (x) => ('value' in x ? entry(x.value) : unknown(x.error)),
        );
      } else if (r < 0.85) {
        const cond = rand() < 0.5 ? pid : undefined;
        input = cond === undefined ? { f: 'unregister' } : { f: 'unregister', pid: cond };
        await recorder.run(
          client,
          key,
          input,
          () => reg.unregister(key, cond === undefined ? {} : { pid: cond }),
          (x) => ('value' in x ? { removed: x.value } : unknown(x.error)),
        );
      } else {
        const merge = rand() < 0.5;
        const meta = { m: seq, c: client };
        input = { f: 'meta', meta, merge };
        await recorder.run(
          client,
          key,
          input,
          () => reg.updateMetadata(key, meta, { merge }),
          (x) =>
            'value' in x ? entry(x.value) : x.error instanceof NotFoundError ? { found: false } : unknown(x.error),
        );
      }
      if (failed) await new Promise((res) => setTimeout(res, backoff));
      // Let the other clients (and timers) run: a synchronous backend would otherwise spin here.
      else await new Promise((res) => setImmediate(res));
      if (o.maxOps !== undefined && recorder.ops.length >= o.maxOps) return;
    }
  };
  const ids = o.ids ?? o.clients.map((_, i) => i);
  await Promise.all(o.clients.map((reg, i) => one(reg, ids[i] ?? i, rng(o.seed * 7919 + (ids[i] ?? i)))));
  return { recorder, errors };
}

/** Scenario knobs from the environment: SCENARIO_MS (per scenario) and SCENARIO_SEED. */
export function scenarioEnv(defaultMs = 12_000): { durationMs: number; seed: number } {
  const durationMs = Number(process.env.SCENARIO_MS ?? defaultMs);
  const seed = process.env.SCENARIO_SEED ? Number(process.env.SCENARIO_SEED) : Math.floor(Math.random() * 1e9);
  return { durationMs, seed };
}
