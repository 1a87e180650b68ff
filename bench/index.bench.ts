/**
 * Metadata indexes and count (issue 14 §1, §7), each beside its strongest raw baseline in the
 * same run:
 * - `list --where zone=z777` through the service on a 1M-entry SQLite store (1k matches) vs a
 *   hand-written prepared query on an expression index over the same rows; the same at 10k (the
 *   index keeps the time flat); index bytes per registration
 * - `count` (live entries, exact) vs a raw `SELECT count(*)` at 100k and 1M (10M: BENCH_SCALE=1)
 * - memory: the first listing after a write (B-tree) vs a listing with no write between; and
 *   `lookupSync` split into its layers (bench/RESULTS.md says where the time goes)
 *
 * Stores are built fast: the backend creates its schema, then raw batched INSERTs fill
 * `registrations` (the index triggers fill `meta_index` in the same statements).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import { ProcessRegistry } from '../src/registry/service.js';
import { dropProcCounts } from '../src/backends/sqlite-counts.js';
import { bulkStore } from './bulk-store.js';
import { spawnSleepers } from '../test/support/processes.js';
import { comparePair, median, opsLabel, type BenchContext, type BenchModule } from './harness.js';

const ZONE_SIZE = 1000;

interface Store {
  path: string;
  n: number;
  buildMs: number;
}

/**
 * `n` entries in namespace `default`, key `k-<i>`, zone `z<i / …>` so that every zone holds
 * ZONE_SIZE entries; entries spread over the `live` pids, and every 100th entry (zone `zdead`)
 * belongs to one of the `dead` pids, as a store with some dead processes not yet swept.
 */
async function buildStore(ctx: BenchContext, n: number, live: number[], dead: number[]): Promise<Store> {
  const path = join(ctx.dir, `index-${n}.db`);
  const node = process.env.REGISTRY_NODE || hostname();
  const zones = n / ZONE_SIZE;
  const now = Date.now();
  process.stderr.write(`  index: building ${n} entries…\n`);
  const { insertMs, rebuildMs } = await bulkStore(
    path,
    n,
    (i) => {
      const isDead = i % 100 === 99;
      const pid = isDead ? dead[i % dead.length]! : live[i % live.length]!;
      const zone = isDead ? 'zdead' : `z${i % zones}`;
      return ['default', `k-${String(i).padStart(8, '0')}`, pid, node, `{"zone":"${zone}","i":${i}}`, now, now, null];
    },
    { backendOpts: { indexFields: ['zone'] } },
  );
  return { path, n, buildMs: insertMs + rebuildMs };
}

/** The list row (service vs raw), and the time per listing for the flatness ratio. */
async function listFigures(ctx: BenchContext, s: Store): Promise<{ bytesPerEntry: number }> {
  const reg = await ProcessRegistry.open({ backend: `sqlite:${s.path}`, cleanupInterval: 0, stats: false });
  const raw = new (loadBetterSqlite())(s.path);
  raw.exec(`CREATE INDEX IF NOT EXISTS raw_zone ON registrations (namespace, json_extract(meta, '$.zone'), key)`);
  const q = raw.prepare(
    `SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations INDEXED BY raw_zone
      WHERE namespace = ? AND json_extract(meta, '$.zone') = ? ORDER BY key LIMIT ?`,
  );
  const zone = `z${777 % (s.n / ZONE_SIZE)}`;
  const got = await reg.list({ where: [['zone', zone]], limit: 1000 });
  const want = q.all('default', zone, 1000);
  if (got.items.length !== 1000 || want.length !== 1000 || got.plan?.method !== 'index')
    throw new Error(
      `list --where ${zone}: ${got.items.length} entries (${JSON.stringify(got.plan)}), raw ${want.length}`,
    );
  const r = await comparePair(
    () => {
      q.all('default', zone, 1000);
    },
    async () => {
      await reg.list({ where: [['zone', zone]], limit: 1000 });
    },
    { opsPerBatch: 1, async: true, rounds: 7, minMs: 200 },
  );
  const parsed = await comparePair(
    () => {
      for (const row of q.all('default', zone, 1000) as Array<{ meta: string }>) JSON.parse(row.meta);
    },
    async () => {
      await reg.list({ where: [['zone', zone]], limit: 1000 });
    },
    { opsPerBatch: 1, async: true, rounds: 5, minMs: 200 },
  );
  const idxBytes = raw.prepare("SELECT sum(pgsize) FROM dbstat WHERE name = 'meta_index'").pluck().get() as number;
  const rawIdxBytes = raw.prepare("SELECT sum(pgsize) FROM dbstat WHERE name = 'raw_zone'").pluck().get() as number;
  const tableBytes = raw.prepare("SELECT sum(pgsize) FROM dbstat WHERE name = 'registrations'").pluck().get() as number;
  const label = s.n >= 1e6 ? `${s.n / 1e6}M` : `${s.n / 1e3}k`;
  ctx.add({
    name: `sqlite list --where zone=${zone} (service, index, ${label} entries, 1k returned)`,
    value: `${(r.subjectNs / 1e6).toFixed(2)} ms`,
    baseline: `${(r.baselineNs / 1e6).toFixed(2)} ms raw prepared SELECT INDEXED BY an expression index (namespace, json_extract(meta,'$.zone'), key)`,
    ratio: r.ratio,
    target: '>= 0.5',
    note: `against raw + JSON.parse of each meta: ${parsed.ratio.toFixed(2)}×. Index ${(idxBytes / s.n).toFixed(1)} B/registration (the raw expression index: ${(rawIdxBytes / s.n).toFixed(1)} B; the table ${(tableBytes / s.n).toFixed(1)} B). Store built in ${(s.buildMs / 1000).toFixed(1)} s (raw batched INSERTs, then the index and counts rebuilt at open)`,
  });
  raw.exec('DROP INDEX raw_zone');
  raw.close();
  await reg.close();
  return { bytesPerEntry: idxBytes / s.n };
}

/**
 * Flatness (issue 14 §1): the same listing on the 10k and the large store, both open at once,
 * rounds interleaved (10k, large, 10k, large…; 21 rounds of at least 150 ms each), medians; the
 * raw indexed query's own ratio over the same two stores beside it (what the data layout costs
 * any reader: at 1M the 1000 rows of a zone sit on 1000 different table pages, at 10k on ~100).
 */
async function flatness(ctx: BenchContext, small: Store, large: Store, bytesPerEntry: number): Promise<void> {
  const open = async (s: Store) => {
    const reg = await ProcessRegistry.open({ backend: `sqlite:${s.path}`, cleanupInterval: 0, stats: false });
    const zone = `z${777 % (s.n / ZONE_SIZE)}`;
    const raw = new (loadBetterSqlite())(s.path, { readonly: true });
    raw.pragma('mmap_size = 2147483648');
    const q = raw.prepare(
      `SELECT r.namespace, r.key, r.pid, r.node, r.meta, r.registered_at, r.updated_at, r.pid_start
       FROM meta_index i CROSS JOIN registrations r ON r.namespace = i.ns AND r.key = i.key
       WHERE i.ns = 'default' AND i.field = 'zone' AND i.value = ? ORDER BY i.key LIMIT 1000`,
    );
    return {
      reg,
      raw,
      svc: async () => {
        const p = await reg.list({ where: [['zone', zone]], limit: 1000 });
        if (p.items.length !== 1000) throw new Error(`${p.items.length} entries`);
      },
      rawList: () => {
        q.all(zone);
      },
    };
  };
  const a = await open(small);
  const b = await open(large);
  try {
    const opts = { opsPerBatch: 1, async: true, rounds: 21, minMs: 150 };
    const svc = await comparePair(a.svc, b.svc, opts);
    const raw = await comparePair(a.rawList, b.rawList, { ...opts, async: false });
    const L = large.n >= 1e6 ? `${large.n / 1e6}M` : `${large.n / 1e3}k`;
    ctx.add({
      name: `sqlite list --where zone (1k returned): ${L} entries vs 10k, interleaved (21 rounds, medians)`,
      value: `${(svc.subjectNs / 1e6).toFixed(2)} ms at ${L}`,
      baseline: `${(svc.baselineNs / 1e6).toFixed(2)} ms at 10k`,
      ratio: svc.subjectNs / svc.baselineNs,
      target: '<= 1.3',
      note: `time ratio, lower is better. The raw join of meta_index to registrations (prepared, no parse): ${(raw.subjectNs / 1e6).toFixed(2)} ms vs ${(raw.baselineNs / 1e6).toFixed(2)} ms = ${(raw.subjectNs / raw.baselineNs).toFixed(2)}×; index ${bytesPerEntry.toFixed(1)} B/registration at ${L}`,
    });
  } finally {
    for (const x of [a, b]) {
      x.raw.close();
      await x.reg.close();
    }
  }
}

/**
 * What the per-process counts' triggers cost a write: register (one autocommit statement each,
 * as the CLI and a library call do) and a bulk of 1000 (one transaction), on two fresh stores,
 * one without the counts (their triggers and tables dropped), rounds interleaved.
 */
async function writeOverhead(ctx: BenchContext): Promise<void> {
  const make = async (name: string, counts: boolean) => {
    const path = join(ctx.dir, `write-${name}.db`);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${path}`, cleanupInterval: 0, stats: false });
    if (!counts) {
      const db = new (loadBetterSqlite())(path);
      dropProcCounts(db);
      db.close();
    }
    return reg;
  };
  const withC = await make('with', true);
  const without = await make('without', false);
  try {
    let i = 0;
    const one = (reg: ProcessRegistry) => async () => {
      await reg.register(`k-${i++}`, process.pid, { role: 'bench' });
    };
    const r1 = await comparePair(one(without), one(withC), { opsPerBatch: 1, async: true, rounds: 9, minMs: 200 });
    const bulk = (reg: ProcessRegistry) => async () => {
      const base = i;
      i += 1000;
      await reg.bulkRegister(Array.from({ length: 1000 }, (_, j) => ({ key: `b-${base + j}`, pid: process.pid })));
    };
    const r2 = await comparePair(bulk(without), bulk(withC), { opsPerBatch: 1000, async: true, rounds: 9, minMs: 200 });
    for (const [what, r] of [
      ['register (autocommit, one at a time)', r1],
      ['bulkRegister (1000 per transaction)', r2],
    ] as const)
      ctx.add({
        name: `sqlite ${what} with the per-process counts' triggers`,
        value: `${(r.subjectNs / 1000).toFixed(1)} µs/entry`,
        baseline: `${(r.baselineNs / 1000).toFixed(1)} µs/entry the same store without them`,
        ratio: r.ratio,
        note: `throughput ratio; ${((r.subjectNs - r.baselineNs) / 1000).toFixed(1)} µs/entry for the counts (metadata index and change log triggers in both)`,
      });
  } finally {
    await withC.close();
    await without.close();
  }
}

async function countFigures(ctx: BenchContext, s: Store, deadPids: number): Promise<void> {
  const reg = await ProcessRegistry.open({ backend: `sqlite:${s.path}`, cleanupInterval: 0, stats: false });
  const raw = new (loadBetterSqlite())(s.path, { readonly: true });
  const c = raw.prepare('SELECT count(*) FROM registrations WHERE namespace = ?').pluck();
  const liveWant = s.n - Math.floor((s.n + 1) / 100);
  const n = await reg.count();
  if (n !== liveWant) throw new Error(`count ${n}, expected ${liveWant} live of ${s.n}`);
  const r = await comparePair(
    () => {
      c.get('default');
    },
    async () => {
      await reg.count();
    },
    { opsPerBatch: 1, async: true, rounds: s.n >= 5e6 ? 3 : 7, minMs: s.n >= 5e6 ? 1 : 100 },
  );
  // What count did before: a sweep's GROUP BY over every row of this node's processes.
  const groupBy = raw.prepare(
    'SELECT pid, pid_start, count(*) FROM registrations WHERE node = ? GROUP BY pid, pid_start',
  );
  const g: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    groupBy.all(reg.nodeName);
    g.push(performance.now() - t0);
  }
  const label = s.n >= 1e6 ? `${s.n / 1e6}M` : `${s.n / 1e3}k`;
  ctx.add({
    name: `sqlite count (live, exact; ${label} entries, 1% of them of ${deadPids} dead processes)`,
    value: `${(r.subjectNs / 1e6).toFixed(1)} ms`,
    baseline: `${(r.baselineNs / 1e6).toFixed(1)} ms raw prepared SELECT count(*)`,
    ratio: r.subjectNs / r.baselineNs,
    target: '<= 1.5',
    note: `time ratio, lower is better. One row per process (proc_counts, kept by triggers), each process judged once; the GROUP BY the old sweep-then-count read first: ${median(g).toFixed(1)} ms`,
  });
  raw.close();
  await reg.close();
}

async function memoryFigures(ctx: BenchContext): Promise<void> {
  const N = ctx.quick ? 100_000 : 1_000_000;
  const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0, stats: false });
  for (let i = 0; i < N; i += 10_000)
    await reg.bulkRegister(
      Array.from({ length: 10_000 }, (_, j) => ({ key: `svc-${i + j}`, pid: process.pid, meta: { i: i + j } })),
    );
  let w = 0;
  const r = await comparePair(
    async () => {
      await reg.list({ limit: 1000 });
    },
    async () => {
      await reg.register(`new-${w++}`, process.pid, {});
      await reg.list({ limit: 1000 });
    },
    { opsPerBatch: 1, async: true, rounds: 7, minMs: 100 },
  );
  ctx.add({
    name: `memory: first list (1000 entries) after a write, ${N / 1e6}M entries`,
    value: `${(r.subjectNs / 1e6).toFixed(3)} ms`,
    baseline: `${(r.baselineNs / 1e6).toFixed(3)} ms the same list with no write between`,
    ratio: r.subjectNs / r.baselineNs,
    note: 'time ratio, lower is better; keys live in a B-tree kept on every write (before: every key re-sorted after a write, 105 ms at 1M)',
  });
  await reg.close();

  // lookupSync, layer by layer (100k entries as in the core row): Map.get, the backend's lookup,
  // the service without stats, the service as shipped.
  const M = 100_000;
  const plain = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0, stats: false });
  const full = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
  const map = new Map<string, unknown>();
  for (let i = 0; i < M; i += 10_000) {
    const batch = Array.from({ length: 10_000 }, (_, j) => ({ key: `svc-${i + j}`, pid: process.pid, meta: { i } }));
    await plain.bulkRegister(batch);
    await full.bulkRegister(batch);
    for (const b of batch) map.set(b.key, b);
  }
  const backend = (plain as unknown as { backend: { lookup(ns: string, k: string): unknown } }).backend;
  const B = 10_000;
  const keys = Array.from({ length: B }, (_, i) => `svc-${(i * 7919) % M}`);
  let sink = 0;
  const layers: Array<[string, () => void]> = [
    [
      'backend.lookup (Map + closed check + namespace slot)',
      () => keys.forEach((k) => backend.lookup('default', k) && sink++),
    ],
    [
      'service lookupSync, stats: false (+ key validation, liveness)',
      () => keys.forEach((k) => plain.lookupSync(k) && sink++),
    ],
    ['service lookupSync, stats on (+ the latency histogram)', () => keys.forEach((k) => full.lookupSync(k) && sink++)],
  ];
  for (const [what, fn] of layers) {
    const x = await comparePair(() => keys.forEach((k) => map.get(k) && sink++), fn, { opsPerBatch: B });
    ctx.add({
      name: `memory lookup layers: ${what}, ${M / 1000}k entries`,
      value: opsLabel(x.subjectNs),
      baseline: `${opsLabel(x.baselineNs)} raw Map.get`,
      ratio: x.ratio,
      note: `${(x.subjectNs - x.baselineNs).toFixed(0)} ns/lookup above Map.get`,
    });
  }
  if (sink < 0) console.log(sink);
  await plain.close();
  await full.close();
}

const mod: BenchModule = {
  name: 'index',
  async run(ctx) {
    // BENCH_INDEX=list,count,write,memory runs a subset; BENCH_SCALE=1 adds the 10M count.
    const parts = process.env.BENCH_INDEX?.split(',');
    const want = (p: string) => !parts || parts.includes(p);
    const sleepers = await spawnSleepers(24);
    try {
      const live = [process.pid, ...sleepers.slice(0, 20).map((p) => p.pid)];
      const deadOnes = sleepers.slice(20);
      for (const p of deadOnes) await p.kill();
      const dead = deadOnes.map((p) => p.pid);
      const big = ctx.quick ? 100_000 : 1_000_000;
      const small = await buildStore(ctx, 10_000, live, dead);
      const large = await buildStore(ctx, big, live, dead);
      if (want('list')) {
        await listFigures(ctx, small);
        await flatness(ctx, small, large, (await listFigures(ctx, large)).bytesPerEntry);
      }
      if (want('count')) {
        if (!ctx.quick) await countFigures(ctx, await buildStore(ctx, 100_000, live, dead), dead.length);
        await countFigures(ctx, large, dead.length);
        if (process.env.BENCH_SCALE === '1')
          await countFigures(ctx, await buildStore(ctx, 10_000_000, live, dead), dead.length);
      }
      if (want('write')) await writeOverhead(ctx);
      if (want('memory')) await memoryFigures(ctx);
    } finally {
      await Promise.all(sleepers.map((p) => p.kill()));
    }
  },
};
export default mod;
