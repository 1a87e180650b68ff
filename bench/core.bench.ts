/**
 * Core figures of issue 2, each beside its raw baseline in the same run:
 * - sqlite lookup through the service vs a raw better-sqlite3 prepared primary-key get (100k rows)
 * - sqlite register vs a raw autocommit INSERT OR REPLACE
 * - memory lookup through the service (liveness included) vs a raw Map.get
 * - restore of a 1,000,000-entry dump into sqlite vs raw batched inserts of the same file; peak RSS
 * - cold `registry lookup KEY` on the sqlite default vs `node -e 0`
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import { ProcessRegistry } from '../src/registry/service.js';
import { dump } from '../src/registry/dump.js';
import { comparePair, median, opsLabel, type BenchModule } from './harness.js';
import { openPlainTable, PLAIN_COLS } from './plain-table.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'run.js');

async function sqliteFigures(ctx: Parameters<BenchModule['run']>[0]) {
  const N = ctx.quick ? 10_000 : 100_000;
  const path = join(ctx.dir, 'core.db');
  const reg = await ProcessRegistry.open({ backend: `sqlite:${path}`, cleanupInterval: 0 });
  const items = Array.from({ length: N }, (_, i) => ({
    key: `svc-${i}`,
    pid: process.pid,
    meta: { i, role: 'bench' },
  }));
  for (let i = 0; i < N; i += 5000) await reg.bulkRegister(items.slice(i, i + 5000));
  // Raw baseline on the same file, same table, same key distribution.
  const Database = loadBetterSqlite();
  const raw = new Database(path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  const get = raw.prepare(
    'SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations WHERE namespace = ? AND key = ?',
  );
  const B = 2000;
  let seed = 1;
  const nextKey = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return `svc-${seed % N}`;
  };
  const keys = Array.from({ length: B }, nextKey);
  const lk = await comparePair(
    () => {
      for (const k of keys) get.get('default', k);
    },
    () => {
      for (const k of keys) reg.lookupSync(k);
    },
    { opsPerBatch: B },
  );
  ctx.add({
    name: `sqlite lookupSync (service, liveness, ${N / 1000}k rows)`,
    value: opsLabel(lk.subjectNs),
    baseline: `${opsLabel(lk.baselineNs)} raw prepared get`,
    ratio: lk.ratio,
    target: '>= 0.6',
  });
  const lka = await comparePair(
    () => {
      for (const k of keys) get.get('default', k);
    },
    async () => {
      for (const k of keys) await reg.lookup(k);
    },
    { opsPerBatch: B, async: true },
  );
  ctx.add({
    name: 'sqlite lookup (async API, awaited one by one)',
    value: opsLabel(lka.subjectNs),
    baseline: `${opsLabel(lka.baselineNs)} raw prepared get`,
    ratio: lka.ratio,
    target: '>= 0.6',
  });

  // register: fresh keys each round for both sides, autocommit; the raw side into a plain table
  // (same columns and key, none of procreg's triggers: bench/plain-table.ts) holding the same rows.
  const plain = openPlainTable(join(ctx.dir, 'core-plain.db'));
  plain.exec(`ATTACH '${path.replaceAll("'", "''")}' AS src`);
  plain.exec('INSERT INTO main.registrations SELECT * FROM src.registrations');
  plain.exec('DETACH src');
  const ins = plain.prepare(`INSERT OR REPLACE INTO registrations (${PLAIN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const RB = 500;
  let rawN = 0;
  let svcN = 0;
  const node = reg.nodeName;
  const rg = await comparePair(
    () => {
      for (let i = 0; i < RB; i++) {
        const now = Date.now();
        ins.run('rawbench', `r-${rawN++}`, process.pid, node, '{"role":"bench"}', now, now, null);
      }
    },
    async () => {
      for (let i = 0; i < RB; i++)
        await reg.register(`s-${svcN++}`, process.pid, { role: 'bench' }, { namespace: 'svcbench' });
    },
    { opsPerBatch: RB, async: true, rounds: 5, minMs: 200 },
  );
  ctx.add({
    name: 'sqlite register (service, conflict check, WAL)',
    value: opsLabel(rg.subjectNs),
    baseline: `${opsLabel(rg.baselineNs)} raw autocommit INSERT OR REPLACE (plain table)`,
    ratio: rg.ratio,
    target: '>= 0.6',
  });
  plain.close();
  raw.close();
  await reg.close();
}

async function memoryFigures(ctx: Parameters<BenchModule['run']>[0]) {
  const N = ctx.quick ? 10_000 : 100_000;
  const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
  const map = new Map<string, unknown>();
  for (let i = 0; i < N; i++) {
    const e = await reg.register(`svc-${i}`, process.pid, { i });
    map.set(`svc-${i}`, e);
  }
  const B = 10_000;
  const keys = Array.from({ length: B }, (_, i) => `svc-${(i * 7919) % N}`);
  let sink = 0;
  const r = await comparePair(
    () => {
      for (const k of keys) if (map.get(k)) sink++;
    },
    () => {
      for (const k of keys) if (reg.lookupSync(k)) sink++;
    },
    { opsPerBatch: B },
  );
  if (sink < 0) console.log(sink);
  ctx.add({
    name: `memory lookupSync (service, liveness, ${N / 1000}k entries)`,
    value: opsLabel(r.subjectNs),
    baseline: `${opsLabel(r.baselineNs)} raw Map.get`,
    ratio: r.ratio,
    target: '>= 0.3',
  });
  await reg.close();
}

/** Restore in a child process so its peak RSS is its own. */
async function restoreFigures(ctx: Parameters<BenchModule['run']>[0]) {
  const N = ctx.quick ? 100_000 : 1_000_000;
  const src = join(ctx.dir, 'src.db');
  const file = join(ctx.dir, 'dump.ndjson');
  {
    const Database = loadBetterSqlite();
    const reg = await ProcessRegistry.open({ backend: `sqlite:${src}`, cleanupInterval: 0 });
    await reg.close();
    const db = new Database(src);
    const ins = db.prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const now = Date.now();
    db.transaction(() => {
      for (let i = 0; i < N; i++)
        ins.run(
          'default',
          `svc-${String(i).padStart(7, '0')}`,
          1000 + (i % 5000),
          'other-node',
          `{"i":${i},"role":"bench"}`,
          now,
          now,
          null,
        );
    })();
    db.close();
    const r2 = await ProcessRegistry.open({ backend: `sqlite:${src}`, cleanupInterval: 0 });
    await dump(r2, { out: file });
    await r2.close();
  }
  const script = join(ctx.dir, 'restore-child.mjs');
  const distSrc = join(root, 'dist', 'src');
  writeFileSync(
    script,
    `
import { ProcessRegistry } from ${JSON.stringify(join(distSrc, 'registry', 'service.js'))};
import { restore, forEachLineSync } from ${JSON.stringify(join(distSrc, 'registry', 'dump.js'))};
import { openPlainTable, plainInsert } from ${JSON.stringify(join(distSrc, '..', 'bench', 'plain-table.js'))};
const [mode, file, target] = process.argv.slice(2);
const t0 = performance.now();
if (mode === 'service') {
  const reg = await ProcessRegistry.open({ backend: 'sqlite:' + target, cleanupInterval: 0, stats: false });
  const r = await restore(reg, file, { mode: 'merge' });
  await reg.close();
  if (r.restored < 1) throw new Error('nothing restored');
} else {
  const oneTxn = mode === 'raw-one';
  // A plain table: same columns and primary key, no procreg triggers (bench/plain-table.ts).
  const db = openPlainTable(target);
  const ins = plainInsert(db);
  let batch = [];
  const flush = db.transaction((rows) => { for (const e of rows) ins.run(e.namespace, e.key, e.pid, e.node, JSON.stringify(e.meta), e.registeredAt, e.updatedAt, e.pidStart); });
  let first = true;
  const all = () => forEachLineSync(file, (line) => { if (first) { first = false; return; } batch.push(JSON.parse(line)); if (batch.length === 10000) { if (oneTxn) { for (const e of batch) ins.run(e.namespace, e.key, e.pid, e.node, JSON.stringify(e.meta), e.registeredAt, e.updatedAt, e.pidStart); } else flush(batch); batch = []; } });
  if (oneTxn) db.transaction(() => { all(); flush(batch); })(); else { all(); flush(batch); }
  db.close();
}
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, rssMb: process.resourceUsage().maxRSS / 1024 }));
`,
  );
  const svc: number[] = [];
  const raw: number[] = [];
  const rawOne: number[] = [];
  let rss = 0;
  let rawRss = 0;
  const rounds = ctx.quick ? 1 : 3;
  for (let i = 0; i < rounds; i++) {
    for (const mode of ['raw', 'raw-one', 'service'] as const) {
      const target = join(ctx.dir, `restore-${mode}-${i}.db`);
      const out = spawnSync(process.execPath, [script, mode, file, target], { encoding: 'utf8' });
      if (out.status !== 0) throw new Error(`restore child (${mode}) failed: ${out.stderr}`);
      const r = JSON.parse(out.stdout) as { ms: number; rssMb: number };
      if (mode === 'service') {
        svc.push(r.ms);
        rss = Math.max(rss, r.rssMb);
      } else if (mode === 'raw-one') {
        rawOne.push(r.ms);
      } else {
        raw.push(r.ms);
        rawRss = Math.max(rawRss, r.rssMb);
      }
    }
  }
  const s = median(svc);
  const b = median(raw);
  ctx.add({
    name: `restore ${N / 1e6}M-entry dump into sqlite (validated, digest-checked, staged + one swap)`,
    value: `${(s / 1000).toFixed(1)} s (${opsLabel((s * 1e6) / N, 'entries/s')})`,
    baseline: `${(b / 1000).toFixed(1)} s raw batched INSERTs of the same file (10k-row txns, plain table)`,
    ratio: b / s,
    target: '>= 0.7',
    note: `peak RSS ${rss.toFixed(0)} MB (raw ${rawRss.toFixed(0)} MB; target < 300). Raw INSERTs in ONE transaction: ${(median(rawOne) / 1000).toFixed(1)} s = ${(median(rawOne) / s).toFixed(2)}×`,
  });
}

/** Cold start: interleaved spawns of `node -e 0` and `registry lookup KEY`, medians. */
async function coldFigures(ctx: Parameters<BenchModule['run']>[0]) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_DATA_HOME: join(ctx.dir, 'xdg'),
    XDG_CONFIG_HOME: join(ctx.dir, 'xdg-config'),
  };
  delete env.REGISTRY_BACKEND;
  delete env.REGISTRY_PROFILE;
  const sleeper = spawnSync(
    process.execPath,
    [bin, 'register', 'cold-key', '--pid', String(process.pid), '--meta', 'role=bench'],
    { env, encoding: 'utf8' },
  );
  if (sleeper.status !== 0) throw new Error(`register for cold lookup failed: ${sleeper.stderr}`);
  const time = (args: string[], e: NodeJS.ProcessEnv) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { env: e, encoding: 'utf8' });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return ms;
  };
  const variants: Array<[string, NodeJS.ProcessEnv]> = [['as set here', env]];
  if (env.NODE_EXTRA_CA_CERTS) {
    const unset = { ...env };
    delete unset.NODE_EXTRA_CA_CERTS;
    variants.push(['NODE_EXTRA_CA_CERTS unset', unset]);
  }
  for (const [label, e] of variants) {
    const n: number[] = [];
    const fast: number[] = [];
    const full: number[] = [];
    const rounds = ctx.quick ? 5 : 15;
    const noFast = { ...e, REGISTRY_NO_FASTPATH: '1' };
    for (let i = 0; i < rounds; i++) {
      n.push(time(['-e', '0'], e));
      fast.push(time([bin, 'lookup', 'cold-key'], e));
      full.push(time([bin, 'lookup', 'cold-key'], noFast));
    }
    const base = median(n);
    ctx.add({
      name: `cold \`registry lookup KEY\` (sqlite default; env ${label})`,
      value: `${median(fast).toFixed(1)} ms`,
      baseline: `${base.toFixed(1)} ms node -e 0`,
      ratio: median(fast) / base,
      target: '<= 2.0',
      note: `time ratio, lower is better; bin/run.js fast path. Through oclif: ${median(full).toFixed(1)} ms = ${(median(full) / base).toFixed(2)}×`,
    });
  }
}

const mod: BenchModule = {
  name: 'core',
  async run(ctx) {
    // BENCH_CORE=memory,sqlite,cold,restore runs a subset.
    const parts = process.env.BENCH_CORE?.split(',');
    const want = (p: string) => !parts || parts.includes(p);
    if (want('memory')) await memoryFigures(ctx);
    if (want('sqlite')) await sqliteFigures(ctx);
    if (want('cold')) await coldFigures(ctx);
    if (want('restore')) await restoreFigures(ctx);
  },
};
export default mod;
