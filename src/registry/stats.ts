/**
 * Operation counters for health and `registry stats`: per operation a count, an error count and
 * latencies in an HDR histogram (hdr-histogram-js, loaded on first use so a one-shot CLI call does
 * not pay for it). Latency is sampled: after the first `timeFirst` calls, one call in `sampleEvery` is timed (counts are exact), so
 * a memory-speed lookup is not slowed by two clock reads.
 */
import { createRequire } from 'node:module';
import type * as HdrHistogram from 'hdr-histogram-js';
import type { Histogram, JsHistogram } from 'hdr-histogram-js';
import { asRegistryError, type MaybePromise } from '../backends/contract.js';

export interface OperationSnapshot {
  count: number;
  errors: number;
  /** Errors by code. */
  errorCodes: Record<string, number>;
  /** Latency percentiles in milliseconds over the timed sample. */
  latencyMs: { samples: number; p50: number; p90: number; p99: number; max: number; mean: number };
}

/** A cumulative latency histogram: counts[i] samples took at most bounds[i] µs. */
export interface LatencyHistogram {
  counts: number[];
  count: number;
  sumMicros: number;
}

export interface StatsSnapshot {
  startedAt: number;
  uptimeMs: number;
  operations: Record<string, OperationSnapshot>;
}

let hdr: typeof HdrHistogram | undefined;
function loadHdr() {
  hdr ??= createRequire(import.meta.url)('hdr-histogram-js') as typeof HdrHistogram;
  return hdr;
}

/** Highest latency the histograms track, in µs (one hour). */
const MAX_MICROS = 3_600_000_000;

export class OpStats {
  count = 0;
  errors = 0;
  errorCodes: Record<string, number> = {};
  // The call number of the next timed call: `count` and this are all the hot path touches.
  private nextTimed = 1;
  constructor(
    private readonly sampleEvery = 256,
    private readonly timeFirst = 1024,
  ) {}

  /**
   * Count one call; true when this call should be timed. The first `timeFirst` calls all are (a
   * short REPL session or a slow operation still gets real percentiles), then one in
   * `sampleEvery`: two clock reads per call would cost a memory-speed lookup more than the 5 %
   * budget (bench/health.bench.ts). One increment and one comparison, no division.
   */
  hit(): boolean {
    if (++this.count !== this.nextTimed) return false;
    this.nextTimed += this.count < this.timeFirst ? 1 : this.sampleEvery;
    return true;
  }
  private hist: Histogram | null = null;
  // Samples are buffered and folded into the (compact, but slow to update) packed histogram in
  // batches: sorted, each distinct value recorded once with its count. A memory-speed lookup's
  // samples are nearly all the same few microseconds, so a batch costs a handful of updates.
  private readonly buf = new Uint32Array(512);
  private buffered = 0;
  record(micros: number): void {
    this.buf[this.buffered++] = micros < 1 ? 1 : micros > MAX_MICROS ? MAX_MICROS : Math.round(micros);
    if (this.buffered === this.buf.length) this.flush();
  }
  private flush(): void {
    const n = this.buffered;
    if (n === 0) return;
    this.buffered = 0;
    this.hist ??= loadHdr().build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: MAX_MICROS,
      numberOfSignificantValueDigits: 3,
      bitBucketSize: 'packed' as never,
      useWebAssembly: false,
    });
    // Runs of equal values in the sorted batch, each recorded once with its length.
    let value = 0;
    let count = 0;
    for (const x of this.buf.subarray(0, n).sort()) {
      if (count > 0 && x === value) {
        count++;
        continue;
      }
      if (count > 0) this.hist.recordValueWithCount(value, count);
      value = x;
      count = 1;
    }
    if (count > 0) this.hist.recordValueWithCount(value, count);
  }
  /**
   * The timed sample as a cumulative histogram (for Prometheus): per upper bound in µs, how many
   * samples took at most that long; plus the sample count and the sum of their latencies in µs.
   */
  cumulative(boundsMicros: readonly number[]): LatencyHistogram {
    this.flush();
    const counts = boundsMicros.map(() => 0);
    // Built with useWebAssembly: false, so a JsHistogram (which can iterate its values).
    const h = this.hist as JsHistogram | null;
    if (!h) return { counts, count: 0, sumMicros: 0 };
    const it = h.recordedValuesIterator;
    it.reset();
    while (it.hasNext()) {
      const v = it.next();
      // Values within one HDR bucket are equivalent (3 significant digits): use its middle.
      const micros = h.medianEquivalentValue(v.valueIteratedTo);
      boundsMicros.forEach((b, i) => {
        if (micros <= b) counts[i] = (counts[i] ?? 0) + v.countAddedInThisIterationStep;
      });
    }
    return { counts, count: h.totalCount, sumMicros: h.mean * h.totalCount };
  }
  snapshot(): OperationSnapshot {
    this.flush();
    const h = this.hist;
    const ms = (q: number) => (h ? h.getValueAtPercentile(q) / 1000 : 0);
    return {
      count: this.count,
      errors: this.errors,
      errorCodes: { ...this.errorCodes },
      latencyMs: {
        samples: h ? h.totalCount : 0,
        p50: ms(50),
        p90: ms(90),
        p99: ms(99),
        max: h ? h.maxValue / 1000 : 0,
        mean: h ? h.mean / 1000 : 0,
      },
    };
  }
}

export class OperationStats {
  readonly startedAt = Date.now();
  private readonly ops = new Map<string, OpStats>();

  constructor(
    readonly enabled = true,
    readonly sampleEvery = 256,
    readonly timeFirst = 1024,
  ) {}

  /** The counters of one operation (callers on hot paths keep the object). */
  op(name: string): OpStats {
    let s = this.ops.get(name);
    if (!s) {
      s = new OpStats(this.sampleEvery, this.timeFirst);
      this.ops.set(name, s);
    }
    return s;
  }

  /** Count an error of `name` (also used by the sweep timer). */
  error(name: string, err: unknown): void {
    const s = this.op(name);
    s.errors++;
    const code = asRegistryError(err).code;
    s.errorCodes[code] = (s.errorCodes[code] ?? 0) + 1;
  }

  /** Run and account an operation that may be asynchronous; always returns a Promise. */
  track<T>(name: string, fn: () => MaybePromise<T>): Promise<T> {
    if (!this.enabled) {
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const s = this.op(name);
    const timed = s.hit();
    const t0 = timed ? performance.now() : 0;
    let v: MaybePromise<T>;
    try {
      v = fn();
    } catch (e) {
      this.error(name, e);
      return Promise.reject(e);
    }
    if (v instanceof Promise) {
      return v.then(
        (r) => {
          if (timed) s.record((performance.now() - t0) * 1000);
          return r;
        },
        (e) => {
          this.error(name, e);
          throw e;
        },
      );
    }
    if (timed) s.record((performance.now() - t0) * 1000);
    return Promise.resolve(v);
  }

  /** Run and account a synchronous operation. */
  trackSync<T>(name: string, fn: () => T): T {
    if (!this.enabled) return fn();
    const s = this.op(name);
    if (!s.hit()) {
      try {
        return fn();
      } catch (e) {
        this.error(name, e);
        throw e;
      }
    }
    const t0 = performance.now();
    try {
      return fn();
    } catch (e) {
      this.error(name, e);
      throw e;
    } finally {
      s.record((performance.now() - t0) * 1000);
    }
  }

  /** Every operation's timed sample as a cumulative histogram (see OpStats.cumulative). */
  histograms(boundsMicros: readonly number[]): Map<string, LatencyHistogram> {
    const out = new Map<string, LatencyHistogram>();
    for (const [k, v] of [...this.ops].sort(([a], [b]) => (a < b ? -1 : 1))) out.set(k, v.cumulative(boundsMicros));
    return out;
  }

  snapshot(): StatsSnapshot {
    const operations: Record<string, OperationSnapshot> = {};
    for (const [k, v] of [...this.ops].sort(([a], [b]) => (a < b ? -1 : 1))) operations[k] = v.snapshot();
    return { startedAt: this.startedAt, uptimeMs: Date.now() - this.startedAt, operations };
  }
}
