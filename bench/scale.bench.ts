/**
 * Scale rows of issue 14 §7, on SQLite stores of 100k and 1M live registrations (10M with
 * BENCH_SCALE=1: minutes and about 3 GB of disk; BENCH_SCALE_SIZES=100000,1000000 overrides).
 * Stores are filled by the raw bulk loader (bench/bulk-store.ts).
 * - sweep stall: the longest delay of a 5 ms timer during `cleanup()` (incremental, src/registry/sweep.ts),
 *   beside the old one-scan sweep's synchronous `processes()` GROUP BY; target ≤ 10 ms at 10M
 * - max timer delay during each long call (entries/list with an unindexed --where, dump, count -A,
 *   count, namespaces, healthCheck, collectStats, list, digest), beside the idle loop's own delay
 *   in the same run, and the worst call by name; target ≤ 50 ms at 1M
 * - lookup p50 flatness: p50 at each size over the smallest; target ≤ 1.3× at 10M; with and without mmap
 * - restore (staged, chunked, one swap) beside a raw batched insert of the same dump into a plain
 *   table (10k-row transactions, no triggers), and the WAL's peak size beside the database's.
 *   At 10M, dump and restore run only with BENCH_SCALE_DUMP=1 (many minutes; lane B1's rows).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type DatabaseT from 'better-sqlite3';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import type { Registration } from '../src/backends/contract.js';
import { dump, forEachLineSync, restore } from '../src/registry/dump.js';
import { ProcessRegistry } from '../src/registry/service.js';
import {
  comparePair,
  median,
  percentile,
  type BenchContext,
  type BenchModule,
  mb,
  scaleSizes,
  sizeLabel,
} from './harness.js';
import { bulkStore, fileSize as size } from './bulk-store.js';
import { openPlainTable } from './plain-table.js';

const NODE = 'bench-scale';
const PROCS = 8;
const COLS = 'namespace, key, pid, node, meta, registered_at, updated_at, pid_start';

const sizes = (ctx: BenchContext) => scaleSizes(ctx, 'BENCH_SCALE_SIZES');

const label = sizeLabel;
const key = (i: number) => `svc-${String(i).padStart(8, '0')}`;

/**
 * The longest delay of a 5 ms timer while `fn` runs (ms): a chain of setTimeout(5), each late by
 * (fired − due); the loop blocked for X ms shows as a delay of about X. Beside it `cpuMs`: the most
 * CPU time the process used between two ticks — a block by this code costs CPU for its whole
 * length, a process the loaded machine did not run for a while does not (tells the two apart).
 */
async function maxTimerDelay(fn: () => Promise<unknown>): Promise<{ maxMs: number; ms: number; cpuMs: number }> {
  let max = 0;
  let cpuMax = 0;
  let stop = false;
  let due = performance.now() + 5;
  let cpu = process.cpuUsage();
  const tick = () => {
    const now = performance.now();
    max = Math.max(max, now - due);
    const used = process.cpuUsage(cpu);
    cpuMax = Math.max(cpuMax, (used.user + used.system) / 1000);
    cpu = process.cpuUsage();
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
  return { maxMs: max, ms, cpuMs: cpuMax };
}

/** The idle loop's own worst delay over `ms` (the noise floor on a loaded machine). */
const idleDelay = (ms: number) => maxTimerDelay(() => new Promise((r) => setTimeout(r, ms)));

/** A store of `n` rows by the raw bulk loader (bench/bulk-store.ts): plain INSERTs, then the backend's rebuild. */
function build(file: string, n: number, procs: Array<{ pid: number; start: number | null }>) {
  const at = 1_700_000_000_000;
  return bulkStore(file, n, (i) => {
    const p = procs[i % procs.length]!;
    return [
      'default',
      key(i),
      p.pid,
      NODE,
      `{"zone":"z${i % 1000}","role":"${i % 3 ? 'api' : 'worker'}","i":${i}}`,
      at,
      at,
      p.start,
    ];
  });
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
        process.stderr.write(`  scale ${L}: building…\n`);
        const built = await build(file, n, procs);
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

        // count beside a raw prepared count(*) of the namespace (the 10M row: <= 1.5x).
        {
          const raw = new (loadBetterSqlite())(file, { readonly: true });
          const c = raw.prepare("SELECT count(*) FROM registrations WHERE namespace = 'default'").pluck();
          const big = n >= 5_000_000;
          if ((await reg.count()) !== n || c.get() !== n) throw new Error(`count is not ${n}`);
          const r = await comparePair(
            () => void c.get(),
            async () => void (await reg.count()),
            { opsPerBatch: 1, async: true, rounds: big ? 3 : 7, minMs: big ? 1 : 100 },
          );
          raw.close();
          ctx.add({
            name: `sqlite count (live, exact) @${L}`,
            value: `${(r.subjectNs / 1e6).toFixed(2)} ms`,
            baseline: `${(r.baselineNs / 1e6).toFixed(1)} ms raw prepared SELECT count(*) of the namespace`,
            ratio: r.subjectNs / r.baselineNs,
            target: '<= 1.5',
            note: `time ratio, lower is better: one row of the per-process counts per process (${PROCS} here), each judged once`,
          });
        }

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
          ['count (one namespace)', () => reg.count()],
          ['namespaces', () => reg.namespaces()],
          ['healthCheck (registry health)', () => reg.healthCheck()],
          ['collectStats (registry stats)', () => reg.collectStats()],
          ['list (first 1000, no filter)', () => reg.list({ limit: 1000 })],
          ['digest (256 buckets)', async () => reg.backend.digest!('default', 256)],
        ];
        // dump and restore at 10M take many minutes and are lane B1's rows: BENCH_SCALE_DUMP=1 runs them.
        const withDump = n < 5_000_000 || process.env.BENCH_SCALE_DUMP === '1';
        let worstCall = { what: '', maxMs: -1, cpuMs: 0 };
        let worstCpu = { what: '', cpuMs: -1 };
        for (const [what, fn] of calls) {
          if (what === 'dump' && !withDump) continue;
          const d = await maxTimerDelay(fn);
          if (d.maxMs > worstCall.maxMs) worstCall = { what, maxMs: d.maxMs, cpuMs: d.cpuMs };
          if (d.cpuMs > worstCpu.cpuMs) worstCpu = { what, cpuMs: d.cpuMs };
          ctx.add({
            name: `max timer delay @${L}: ${what}`,
            value: `${d.maxMs.toFixed(1)} ms (call ${d.ms.toFixed(0)} ms)`,
            baseline: `${idle.maxMs.toFixed(1)} ms idle loop (3 s)`,
            ratio: Math.max(idle.maxMs, 0.01) / Math.max(d.maxMs, 0.01),
            target: 'delay <= 50 ms at 1M',
            note: `met: ${d.maxMs <= 50 ? 'yes' : 'NO'}; most CPU between two ticks ${d.cpuMs.toFixed(1)} ms (idle loop ${idle.cpuMs.toFixed(1)})`,
          });
        }
        ctx.add({
          name: `worst call @${L}: the longest timer delay of any call above`,
          value: `${worstCall.maxMs.toFixed(1)} ms: ${worstCall.what}`,
          baseline: `${idle.maxMs.toFixed(1)} ms idle loop (3 s)`,
          ratio: Math.max(idle.maxMs, 0.01) / Math.max(worstCall.maxMs, 0.01),
          target: 'delay <= 50 ms at 1M',
          note: `met: ${worstCall.maxMs <= 50 ? 'yes' : 'NO'}; its most CPU between two ticks ${worstCall.cpuMs.toFixed(1)} ms; the most CPU between two ticks of any call: ${worstCpu.cpuMs.toFixed(1)} ms (${worstCpu.what})`,
        });
        await reg.close();
        if (!withDump) {
          for (const s of ['', '-wal', '-shm']) rmSync(file + s, { force: true });
          continue;
        }

        // Restore into a new file beside a raw batched insert of the same dump file (read, parsed,
        // inserted in 10k-row transactions; no check).
        const rawTarget = join(ctx.dir, `scale-${n}-raw.db`);
        openPlainTable(rawTarget, { processIndex: true }).close(); // same columns, key and process index; no procreg triggers
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
          baseline: `${(rawIns.ms / 1000).toFixed(1)} s raw batched insert of the dump into a plain table (parse + 10k-row txns, no triggers)`,
          ratio: restoreMs / rawIns.ms,
          target: '<= 1.3',
          note: `time ratio, lower is better. WAL peak ${mb(walPeak)} (raw ${mb(rawIns.wal)}); database ${mb(size(target))} (a one-transaction restore's WAL grows to about that). Raw insert of the rows from memory: ${(built.insertMs / 1000).toFixed(1)} s`,
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
