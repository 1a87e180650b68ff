/**
 * Scale rows of issue 14 §7, on SQLite stores of 100k and 1M live registrations (10M with
 * BENCH_SCALE=1: minutes and about 3 GB of disk; BENCH_SCALE_SIZES=100000,1000000 overrides):
 * - sweep stall: the longest delay of a 5 ms timer during `cleanup()` (incremental, src/registry/sweep.ts),
 *   beside the old one-scan sweep's synchronous `processes()` GROUP BY; target ≤ 10 ms at 10M
 * - max timer delay during each long call (entries/list with an unindexed --where, dump, count -A,
 *   digest), beside the idle loop's own delay in the same run; target ≤ 50 ms at 1M
 * - lookup p50 flatness: p50 at each size over the smallest; target ≤ 1.3× at 10M; with and without mmap
 * - restore (staged, chunked, one swap) beside the raw batched insert of the same rows that built
 *   the store (10k-row transactions), and the WAL's peak size beside the database's
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type DatabaseT from 'better-sqlite3';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import type { Registration } from '../src/backends/contract.js';
import { dump, forEachLineSync, restore } from '../src/registry/dump.js';
import { ProcessRegistry } from '../src/registry/service.js';
import { median, percentile, type BenchContext, type BenchModule } from './harness.js';
import { openPlainTable } from './plain-table.js';

const NODE = 'bench-scale';
const PROCS = 8;
const COLS = 'namespace, key, pid, node, meta, registered_at, updated_at, pid_start';

function sizes(ctx: BenchContext): number[] {
  const env = process.env.BENCH_SCALE_SIZES?.split(',')
    .map(Number)
    .filter((n) => n > 0);
  if (env?.length) return env;
  if (ctx.quick) return [10_000, 100_000];
  return process.env.BENCH_SCALE === '1' ? [100_000, 1_000_000, 10_000_000] : [100_000, 1_000_000];
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
const key = (i: number) => `svc-${String(i).padStart(8, '0')}`;
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const size = (f: string) => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};

/**
 * The longest delay of a 5 ms timer while `fn` runs (ms): a chain of setTimeout(5), each late by
 * (fired − due); the loop blocked for X ms shows as a delay of about X.
 */
async function maxTimerDelay(fn: () => Promise<unknown>): Promise<{ maxMs: number; ms: number }> {
  let max = 0;
  let stop = false;
  let due = performance.now() + 5;
  const tick = () => {
    const now = performance.now();
    max = Math.max(max, now - due);
    if (stop) return;
    due = now + 5;
    setTimeout(tick, 5);
  };
  setTimeout(tick, 5);
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  stop = true;
  // The last timer's delay counts too (a call that ends in one long block).
  await new Promise((r) => setTimeout(r, 6));
  return { maxMs: max, ms };
}

/** The idle loop's own worst delay over `ms` (the noise floor on a loaded machine). */
const idleDelay = (ms: number) => maxTimerDelay(() => new Promise((r) => setTimeout(r, ms)));

/** Build a store of `n` rows by raw batched inserts (10k-row transactions): the restore baseline. */
function build(file: string, n: number, procs: Array<{ pid: number; start: number | null }>) {
  const Database = loadBetterSqlite();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const ins = db.prepare(`INSERT INTO registrations (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const at = 1_700_000_000_000;
  const t0 = performance.now();
  const chunk = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const p = procs[i % procs.length]!;
      ins.run(
        'default',
        key(i),
        p.pid,
        NODE,
        `{"zone":"z${i % 1000}","role":"${i % 3 ? 'api' : 'worker'}","i":${i}}`,
        at,
        at,
        p.start,
      );
    }
  });
  for (let i = 0; i < n; i += 10_000) chunk(i, Math.min(n, i + 10_000));
  const ms = performance.now() - t0;
  const wal = size(`${file}-wal`);
  db.close();
  return { ms, wal };
}

/** The raw baseline of a restore: the dump read line by line, parsed, inserted in 10k-row transactions. */
function rawInsertDump(file: string, dumpFile: string): { ms: number; wal: number } {
  const Database = loadBetterSqlite();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const ins = db.prepare(`INSERT INTO registrations (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const flush = db.transaction((rows: Registration[]) => {
    for (const e of rows)
      ins.run(e.namespace, e.key, e.pid, e.node, JSON.stringify(e.meta), e.registeredAt, e.updatedAt, e.pidStart);
  });
  const t0 = performance.now();
  let batch: Registration[] = [];
  let first = true;
  forEachLineSync(dumpFile, (line) => {
    if (first) return void (first = false);
    batch.push(JSON.parse(line) as Registration);
    if (batch.length === 10_000) {
      flush(batch);
      batch = [];
    }
  });
  flush(batch);
  const ms = performance.now() - t0;
  const wal = size(`${file}-wal`);
  db.close();
  return { ms, wal };
}

/** p50 of single lookups of random keys (µs), each timed on its own. */
function p50(n: number, get: (k: string) => unknown, samples = 20_000): number {
  const t: number[] = new Array(samples);
  let seed = 7;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const k = key(seed % n);
    const t0 = process.hrtime.bigint();
    if (get(k) === undefined) throw new Error(`lookup of ${k} found nothing`);
    t[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return percentile(t, 50);
}

function rawGet(file: string, mmap: number): { get: (k: string) => unknown; db: DatabaseT.Database } {
  const Database = loadBetterSqlite();
  const db = new Database(file, { readonly: true });
  db.pragma(`mmap_size = ${mmap}`);
  const st = db.prepare(`SELECT ${COLS} FROM registrations WHERE namespace = 'default' AND key = ?`);
  return { get: (k) => st.get(k), db };
}

const bench: BenchModule = {
  name: 'scale',
  async run(ctx) {
    const sleepers: ChildProcess[] = [];
    const lookups: Array<{ n: number; svc: number; raw: number; rawMmap: number }> = [];
    try {
      for (let i = 0; i < PROCS - 1; i++) sleepers.push(spawn('sleep', ['3600'], { stdio: 'ignore' }));
      const probe = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0, nodeName: NODE });
      const procs = [process.pid, ...sleepers.map((s) => s.pid!)].map((pid) => ({
        pid,
        start: probe.makeEntry('probe', pid).pidStart ?? null,
      }));
      await probe.close();
      for (const n of sizes(ctx)) {
        const L = label(n);
        const file = join(ctx.dir, `scale-${n}.db`);
        await (await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 })).close();
        process.stderr.write(`  scale ${L}: building…\n`);
        const built = build(file, n, procs);
        const reg = await ProcessRegistry.open({
          backend: `sqlite:${file}`,
          cleanupInterval: 0,
          nodeName: NODE,
          stats: false,
        });

        // Lookups: p50 of single random-key lookups, service and raw (mmap off / on).
        const raw0 = rawGet(file, 0);
        const rawM = rawGet(file, 4 * 1024 ** 3);
        p50(n, (k) => reg.lookupSync(k), 2000); // warm
        const lk = {
          n,
          raw: p50(n, raw0.get),
          rawMmap: p50(n, rawM.get),
          svc: p50(n, (k) => reg.lookupSync(k)),
        };
        raw0.db.close();
        rawM.db.close();
        lookups.push(lk);
        ctx.add({
          name: `sqlite lookupSync p50 @${L} (random keys, one at a time; mmap_size default)`,
          value: `${lk.svc.toFixed(1)} µs`,
          baseline: `${lk.raw.toFixed(1)} µs raw prepared get (mmap off)`,
          ratio: lk.raw / lk.svc,
          note: `raw with mmap_size 4 GiB: ${lk.rawMmap.toFixed(1)} µs (${(lk.raw / lk.rawMmap).toFixed(2)}× the raw without)`,
        });

        // The sweep: the old one-scan (processes() GROUP BY, synchronous) beside the incremental one.
        const old = reg.backend as unknown as { processes(node: string): unknown[] };
        const t0 = performance.now();
        old.processes(NODE);
        const oldMs = performance.now() - t0;
        const sweeps: Array<{ maxMs: number; ms: number }> = [];
        for (let i = 0; i < 5; i++) sweeps.push(await maxTimerDelay(() => reg.cleanup()));
        const sw = median(sweeps.map((x) => x.maxMs));
        const worst = Math.max(...sweeps.map((x) => x.maxMs));
        ctx.add({
          name: `sweep @${L}: longest 5 ms-timer delay during cleanup() (${PROCS} live processes; median of 5 sweeps)`,
          value: `${sw.toFixed(1)} ms (worst ${worst.toFixed(1)}; sweep ${median(sweeps.map((x) => x.ms)).toFixed(1)} ms)`,
          baseline: `${oldMs.toFixed(1)} ms one-scan sweep (blocks)`,
          ratio: oldMs / Math.max(sw, 0.01),
          target: 'stall <= 10 ms',
          note: `met: ${sw <= 10 ? 'yes' : 'NO'}; ratio = old block / new stall`,
        });

        // The long calls: the longest timer delay during each, beside the idle loop's.
        const idle = await idleDelay(3000);
        const dumpFile = join(ctx.dir, `scale-${n}.ndjson`);
        const calls: Array<[string, () => Promise<unknown>]> = [
          [
            'entries({where}) on an unindexed field',
            async () => {
              let c = 0;
              for await (const _ of reg.entries({ where: [['i', '-1']] })) c++;
              return c;
            },
          ],
          ['list --where on an unindexed field (no match)', () => reg.list({ where: [['i', '-1']], limit: 100 })],
          ['dump', () => dump(reg, { out: dumpFile })],
          [
            'count -A',
            async () => {
              for (const ns of await reg.namespaces()) await reg.count({ namespace: ns });
            },
          ],
          ['digest (256 buckets)', async () => reg.backend.digest!('default', 256)],
        ];
        for (const [what, fn] of calls) {
          const d = await maxTimerDelay(fn);
          ctx.add({
            name: `max timer delay @${L}: ${what}`,
            value: `${d.maxMs.toFixed(1)} ms (call ${d.ms.toFixed(0)} ms)`,
            baseline: `${idle.maxMs.toFixed(1)} ms idle loop (3 s)`,
            ratio: Math.max(idle.maxMs, 0.01) / Math.max(d.maxMs, 0.01),
            target: 'delay <= 50 ms at 1M',
            note: `met: ${d.maxMs <= 50 ? 'yes' : 'NO'}`,
          });
        }
        await reg.close();

        // Restore into a new file beside a raw batched insert of the same dump file (read, parsed,
        // inserted in 10k-row transactions; no check).
        const rawTarget = join(ctx.dir, `scale-${n}-raw.db`);
        openPlainTable(rawTarget).close(); // same columns and key, no procreg triggers
        const rawIns = rawInsertDump(rawTarget, dumpFile);
        const target = join(ctx.dir, `scale-${n}-restored.db`);
        const r2 = await ProcessRegistry.open({ backend: `sqlite:${target}`, cleanupInterval: 0, stats: false });
        const t1 = performance.now();
        let walPeak = 0;
        const watch = setInterval(() => (walPeak = Math.max(walPeak, size(`${target}-wal`))), 20);
        const res = await restore(r2, dumpFile, { mode: 'replace' });
        clearInterval(watch);
        const restoreMs = performance.now() - t1;
        walPeak = Math.max(walPeak, size(`${target}-wal`));
        await r2.close();
        if (res.restored !== n) throw new Error(`restored ${res.restored} of ${n}`);
        ctx.add({
          name: `restore @${L} (validated, digest-checked, staged + one swap)`,
          value: `${(restoreMs / 1000).toFixed(1)} s`,
          baseline: `${(rawIns.ms / 1000).toFixed(1)} s raw batched insert of the dump (parse + 10k-row txns)`,
          ratio: restoreMs / rawIns.ms,
          target: '<= 1.3',
          note: `time ratio, lower is better. WAL peak ${mb(walPeak)} (raw ${mb(rawIns.wal)}); database ${mb(size(target))} (a one-transaction restore's WAL grows to about that). Raw insert of the rows from memory: ${(built.ms / 1000).toFixed(1)} s`,
        });
        for (const f of [file, target, rawTarget, dumpFile])
          for (const s of ['', '-wal', '-shm']) rmSync(f + s, { force: true });
      }
      const first = lookups[0]!;
      for (const lk of lookups.slice(1)) {
        ctx.add({
          name: `sqlite lookupSync p50 flatness: @${label(lk.n)} over @${label(first.n)}`,
          value: `${lk.svc.toFixed(1)} µs`,
          baseline: `${first.svc.toFixed(1)} µs @${label(first.n)}`,
          ratio: lk.svc / first.svc,
          target: '<= 1.3',
          note: `time ratio. Raw get: ${(lk.raw / first.raw).toFixed(2)}× (mmap: ${(lk.rawMmap / first.rawMmap).toFixed(2)}×)`,
        });
      }
    } finally {
      for (const s of sleepers) s.kill('SIGKILL');
    }
  },
};

export default bench;
