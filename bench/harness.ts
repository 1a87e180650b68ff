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

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Nanoseconds per op of a synchronous batch function doing `opsPerBatch` operations. */
function timeSync(fn: () => void, opsPerBatch: number, minMs: number): number {
  let batches = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    fn();
    batches++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < minMs);
  return (elapsed * 1e6) / (batches * opsPerBatch);
}

async function timeAsync(fn: () => Promise<void>, opsPerBatch: number, minMs: number): Promise<number> {
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
    opts.async
      ? timeAsync(f as () => Promise<void>, opts.opsPerBatch, minMs)
      : timeSync(f as () => void, opts.opsPerBatch, minMs);
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
