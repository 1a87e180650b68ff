/**
 * The SQLite change feed (docs/feed.md, issue 14 §3):
 * - delivery latency of a write made by another OS process to this process's `watch` (p50/p99),
 *   against the 100 ms p99 target and beside a raw better-sqlite3 reader polling a hand-written log
 *   table at the same interval, fed by the same writer process in the same run;
 * - the per-write cost of the log: register (autocommit) and bulkRegister (1,000 per transaction)
 *   on a store with the log, against the same store with its log triggers dropped.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import { FEED_POLL_MS } from '../src/backends/sqlite-feed.js';
import { ProcessRegistry } from '../src/registry/service.js';
import { type BenchContext, type BenchModule, comparePair, opsLabel, percentile } from './harness.js';

const SERVICE = fileURLToPath(new URL('../src/registry/service.js', import.meta.url));
const SQLITE = fileURLToPath(new URL('../src/backends/sqlite.js', import.meta.url));

/** Wall-clock ms with sub-ms resolution, comparable across processes of one machine. */
const now = () => performance.timeOrigin + performance.now();

/**
 * The writer process: `n` writes 5–25 ms apart, each to the procreg store (register, the send time
 * in its metadata) and to the raw log (an insert of the send time), in alternating order.
 */
const writerScript = (store: string, rawFile: string, n: number) => `
  const { ProcessRegistry } = await import(${JSON.stringify(SERVICE)});
  const { loadBetterSqlite } = await import(${JSON.stringify(SQLITE)});
  const now = () => performance.timeOrigin + performance.now();
  const reg = await ProcessRegistry.open({ backend: ${JSON.stringify(`sqlite:${store}`)}, cleanupInterval: 0, stats: false });
  const Database = loadBetterSqlite();
  const raw = new Database(${JSON.stringify(rawFile)});
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  const ins = raw.prepare('INSERT INTO log (t) VALUES (?)');
  for (let i = 0; i < ${n}; i++) {
    const a = () => reg.register('k' + (i % 50), process.pid, { t: now() });
    const b = () => ins.run(now());
    if (i % 2) { await a(); b(); } else { b(); await a(); }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
  }
  await reg.close();
  raw.close();`;

async function deliveryLatency(ctx: BenchContext): Promise<void> {
  const n = ctx.quick ? 100 : 500;
  const store = join(ctx.dir, 'feed-latency.db');
  const rawFile = join(ctx.dir, 'feed-raw.db');
  const Database = loadBetterSqlite();
  const raw = new Database(rawFile);
  raw.pragma('journal_mode = WAL');
  raw.exec('CREATE TABLE log (rev INTEGER PRIMARY KEY, t REAL NOT NULL)');
  const reg = await ProcessRegistry.open({ backend: `sqlite:${store}`, cleanupInterval: 0, stats: false });
  const mine: number[] = [];
  const base: number[] = [];
  const stop = await reg.backend.watch!({}, (e) => {
    if (e.type === 'put') mine.push(now() - (e.entry!.meta.t as number));
  });
  // The baseline: poll the hand-written log at the same interval, reading the new rows.
  const read = raw.prepare('SELECT rev, t FROM log WHERE rev > ? ORDER BY rev');
  let last = 0;
  const timer = setInterval(() => {
    for (const r of read.all(last) as Array<{ rev: number; t: number }>) {
      base.push(now() - r.t);
      last = r.rev;
    }
  }, FEED_POLL_MS);
  const child = spawn(process.execPath, ['--input-type=module', '-e', writerScript(store, rawFile, n)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`the writer process failed (exit ${code})`);
  const deadline = Date.now() + 5000;
  while ((mine.length < n || base.length < n) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  clearInterval(timer);
  stop();
  await reg.close();
  raw.close();
  if (mine.length < n || base.length < n)
    throw new Error(`events lost: procreg ${mine.length}/${n}, raw ${base.length}/${n}`);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const [p50, p99, max] = [percentile(mine, 50), percentile(mine, 99), Math.max(...mine)];
  const [b50, b99] = [percentile(base, 50), percentile(base, 99)];
  ctx.add({
    name: `sqlite watch: another process's write delivered, p99 (${n} writes, poll ${FEED_POLL_MS} ms)`,
    value: ms(p99),
    baseline: '100 ms target',
    ratio: 100 / p99,
    target: '>= 1.0',
    note: `p50 ${ms(p50)}, max ${ms(max)}`,
  });
  ctx.add({
    name: 'sqlite watch delivery p99 vs a raw polling reader of a hand-written log',
    value: ms(p99),
    baseline: `${ms(b99)} raw (p50 ${ms(b50)})`,
    ratio: b99 / p99,
    note: `procreg p50 ${ms(p50)}; same writer process, same interval`,
  });
}

async function writeOverhead(ctx: BenchContext): Promise<void> {
  const withLog = await ProcessRegistry.open({
    backend: `sqlite:${join(ctx.dir, 'feed-with.db')}`,
    cleanupInterval: 0,
    stats: false,
  });
  const withoutFile = join(ctx.dir, 'feed-without.db');
  const without = await ProcessRegistry.open({ backend: `sqlite:${withoutFile}`, cleanupInterval: 0, stats: false });
  // The same store with its log triggers dropped (after the open, which would add them back).
  const raw = new (loadBetterSqlite())(withoutFile);
  raw.exec(
    'DROP TRIGGER registry_changes_insert; DROP TRIGGER registry_changes_update; DROP TRIGGER registry_changes_delete;',
  );
  raw.close();
  const B = 500;
  let a = 0;
  let b = 0;
  const one = await comparePair(
    async () => {
      for (let i = 0; i < B; i++) await without.register(`r${b++}`, process.pid, { role: 'bench' });
    },
    async () => {
      for (let i = 0; i < B; i++) await withLog.register(`r${a++}`, process.pid, { role: 'bench' });
    },
    { opsPerBatch: B, async: true, rounds: ctx.quick ? 3 : 7 },
  );
  ctx.add({
    name: 'sqlite register with the change log (autocommit, WAL)',
    value: opsLabel(one.subjectNs),
    baseline: `${opsLabel(one.baselineNs)} same store, log triggers dropped`,
    ratio: one.ratio,
    note: `+${((one.subjectNs - one.baselineNs) / 1000).toFixed(1)} µs per write`,
  });
  const K = 1000;
  const items = (n: number) =>
    Array.from({ length: K }, (_, i) => ({ key: `bulk-${n}-${i}`, pid: process.pid, meta: { i } }));
  let ba = 0;
  let bb = 0;
  const bulk = await comparePair(
    async () => void (await without.bulkRegister(items(bb++))),
    async () => void (await withLog.bulkRegister(items(ba++))),
    { opsPerBatch: K, async: true, rounds: ctx.quick ? 3 : 7 },
  );
  ctx.add({
    name: 'sqlite bulkRegister with the change log (1,000 per transaction)',
    value: opsLabel(bulk.subjectNs),
    baseline: `${opsLabel(bulk.baselineNs)} same store, log triggers dropped`,
    ratio: bulk.ratio,
    note: `+${((bulk.subjectNs - bulk.baselineNs) / 1000).toFixed(2)} µs per entry`,
  });
  await withLog.close();
  await without.close();
}

const feed: BenchModule = {
  name: 'feed',
  async run(ctx) {
    await deliveryLatency(ctx);
    await writeOverhead(ctx);
  },
};
export default feed;
