/**
 * Benchmark harness: every figure is measured beside its raw baseline in the same run, rounds
 * interleaved (baseline, subject, baseline, subject…), and reported as medians with the ratio
 * subject/baseline in throughput terms (≥ 1 is as fast as the baseline). Machines here are noisy:
 * trust ratios and medians, not absolute numbers.
 *
 * A bench module (bench/*.bench.ts) exports `default: BenchModule`; bench/index.ts runs them all
 * (or those named in BENCH=a,b) and prints one table.
 */
export interface Row {
  /** What is measured. */
  name: string;
  /** The subject figure, e.g. "412k ops/s". */
  value: string;
  /** The baseline's figure and name. */
  baseline: string;
  /** subject / baseline in throughput terms (higher is better). */
  ratio: number;
  /** The target ratio from the issue, with its sense: ">= 0.6" or "<= 2.0". */
  target?: string;
  /** Extra notes (RSS, p99, …). */
  note?: string;
}

export interface BenchContext {
  /** Rows are added here as they are measured. */
  add(row: Row): void;
  /** Scale knob: BENCH_QUICK=1 shrinks datasets for a smoke run. */
  quick: boolean;
  /** A scratch folder for this run. */
  dir: string;
}

export interface BenchModule {
  name: string;
  run(ctx: BenchContext): Promise<void>;
}

/** `xs[i]`, checked: a bench that indexes past its data is broken, and says so. */
export function nth<T>(xs: readonly T[], i: number): T {
  const v = xs[i];
  if (v === undefined) throw new RangeError(`index ${i} is out of range (length ${xs.length})`);
  return v;
}

/** The median; NaN for no samples. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? nth(s, m) : (nth(s, m - 1) + nth(s, m)) / 2;
}

/** The `p`th percentile (nearest rank); NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return nth(s, Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1)));
}

/**
 * Nanoseconds per op of a synchronous batch function doing `opsPerBatch` operations. A batch that
 * returns a promise would not be timed (its work would run after the clock stops): refused.
 */
function timeSync(fn: () => unknown, opsPerBatch: number, minMs: number): number {
  let batches = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    if (fn() instanceof Promise) throw new Error('an async batch timed as synchronous: pass { async: true }');
    batches++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < minMs);
  return (elapsed * 1e6) / (batches * opsPerBatch);
}

async function timeAsync(fn: () => void | Promise<void>, opsPerBatch: number, minMs: number): Promise<number> {
  let batches = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    await fn();
    batches++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < minMs);
  return (elapsed * 1e6) / (batches * opsPerBatch);
}

export interface PairResult {
  subjectNs: number;
  baselineNs: number;
  /** baselineNs / subjectNs: throughput ratio subject/baseline. */
  ratio: number;
}

/**
 * Interleaved rounds of baseline and subject; medians of ns/op. Each function performs
 * `opsPerBatch` operations per call.
 */
export async function comparePair(
  baseline: () => void | Promise<void>,
  subject: () => void | Promise<void>,
  opts: { opsPerBatch: number; rounds?: number; minMs?: number; async?: boolean },
): Promise<PairResult> {
  const rounds = opts.rounds ?? 7;
  const minMs = opts.minMs ?? 150;
  const b: number[] = [];
  const s: number[] = [];
  const run = async (f: () => void | Promise<void>) =>
    opts.async ? timeAsync(f, opts.opsPerBatch, minMs) : timeSync(f, opts.opsPerBatch, minMs);
  // warm-up
  await run(baseline);
  await run(subject);
  for (let i = 0; i < rounds; i++) {
    b.push(await run(baseline));
    s.push(await run(subject));
  }
  const baselineNs = median(b);
  const subjectNs = median(s);
  return { subjectNs, baselineNs, ratio: baselineNs / subjectNs };
}

/** 1234567 → "1.23M". */
export function fmtRate(opsPerSec: number): string {
  if (opsPerSec >= 1e6) return `${(opsPerSec / 1e6).toFixed(2)}M`;
  if (opsPerSec >= 1e3) return `${(opsPerSec / 1e3).toFixed(1)}k`;
  return opsPerSec.toFixed(1);
}

export function opsLabel(ns: number, unit = 'ops/s'): string {
  return `${fmtRate(1e9 / ns)} ${unit}`;
}

/**
 * The store sizes a scale bench runs at: `envName` (comma-separated) when set; 10k and 100k in
 * quick mode; 100k and 1M, plus 10M with BENCH_SCALE=1.
 */
export function scaleSizes(ctx: BenchContext, envName: string): number[] {
  const env = process.env[envName]
    ?.split(',')
    .map(Number)
    .filter((n) => n > 0);
  if (env?.length) return env;
  if (ctx.quick) return [10_000, 100_000];
  return process.env.BENCH_SCALE === '1' ? [100_000, 1_000_000, 10_000_000] : [100_000, 1_000_000];
}

/** 100000 → "100k", 1000000 → "1M". */
export const sizeLabel = (n: number): string => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);

/** Bytes as MB with one decimal. */
export const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;
