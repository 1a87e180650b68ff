/**
 * `registry import` into SQLite (issue 14 §2): 1,000,000 plain NDJSON entries (BENCH_QUICK: 100k)
 * imported by the library's `importEntries` (streamed, validated, in atomic batches of 20,000,
 * register's conflict rule), beside the best hand-written importer of the same file into the same
 * columns and primary key: the same chunked line reader, JSON.parse, one prepared INSERT, 50,000-row
 * transactions, into a plain table (bench/plain-table.ts: no change-log or index triggers, which a
 * file procreg created carries; a second raw run adds the process index procreg keeps).
 * Each run is a child process, so its peak RSS (process.resourceUsage().maxRSS) is its own.
 * Target: at most 1.5× the raw time, peak RSS under 300 MB. Also: `--atomic` (checked into a spool,
 * then one transaction) and the CLI (`registry import FILE`), as notes.
 */
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type BenchModule } from './harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function writeInput(file: string, n: number): void {
  const fd = openSync(file, 'w');
  let buf = '';
  for (let i = 0; i < n; i++) {
    buf += `{"key":"svc-${String(i).padStart(7, '0')}","pid":${1000 + (i % 5000)},"node":"other-node","meta":{"i":${i},"role":"bench","zone":"z${i % 1000}"}}\n`;
    if (buf.length > 1 << 20) {
      writeSync(fd, buf);
      buf = '';
    }
  }
  writeSync(fd, buf);
  closeSync(fd);
}

const childScript = (distSrc: string) => `
import { ProcessRegistry } from ${JSON.stringify(join(distSrc, 'registry', 'service.js'))};
import { importEntries } from ${JSON.stringify(join(distSrc, 'registry', 'import.js'))};
import { forEachLineSync } from ${JSON.stringify(join(distSrc, 'registry', 'dump.js'))};
import { openPlainTable, plainInsert } from ${JSON.stringify(join(distSrc, '..', 'bench', 'plain-table.js'))};
const [mode, file, target] = process.argv.slice(2);
const t0 = performance.now();
let n = 0;
if (mode === 'import' || mode === 'atomic') {
  const reg = await ProcessRegistry.open({ backend: 'sqlite:' + target, cleanupInterval: 0, stats: false });
  const r = await importEntries(reg, file, { atomic: mode === 'atomic' });
  await reg.close();
  n = r.written;
} else {
  // A plain table (same columns and primary key, no procreg triggers); raw-idx adds the process index.
  const db = openPlainTable(target, { processIndex: mode === 'raw-idx' });
  const ins = plainInsert(db);
  const now = Date.now();
  let batch = [];
  const flush = db.transaction((rows) => { for (const e of rows) ins.run('default', e.key, e.pid, e.node, JSON.stringify(e.meta), now, now, null); });
  forEachLineSync(file, (line) => { batch.push(JSON.parse(line)); if (batch.length === 50000) { flush(batch); n += batch.length; batch = []; } });
  flush(batch);
  n += batch.length;
  db.close();
}
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, n, rssMb: process.resourceUsage().maxRSS / 1024 }));
`;

const bench: BenchModule = {
  name: 'import',
  async run(ctx) {
    const N = ctx.quick ? 100_000 : 1_000_000;
    const file = join(ctx.dir, 'import.ndjson');
    writeInput(file, N);
    const script = join(ctx.dir, 'import-child.mjs');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(script, childScript(join(root, 'dist', 'src')));
    const times: Record<'raw' | 'raw-idx' | 'import' | 'atomic' | 'cli', number[]> = {
      raw: [],
      'raw-idx': [],
      import: [],
      atomic: [],
      cli: [],
    };
    const rss: Record<string, number> = {};
    const rounds = Number(process.env.BENCH_IMPORT_ROUNDS) || (ctx.quick ? 1 : 3);
    for (let i = 0; i < rounds; i++) {
      for (const mode of ['raw', 'raw-idx', 'import', 'atomic'] as const) {
        const target = join(ctx.dir, `import-${mode}-${i}.db`);
        const out = spawnSync(process.execPath, [script, mode, file, target], { encoding: 'utf8' });
        if (out.status !== 0) throw new Error(`import child (${mode}) failed: ${out.stderr}`);
        const r = JSON.parse(out.stdout) as { ms: number; n: number; rssMb: number };
        if (r.n !== N) throw new Error(`import child (${mode}) wrote ${r.n} of ${N}`);
        times[mode].push(r.ms);
        rss[mode] = Math.max(rss[mode] ?? 0, r.rssMb);
      }
      const target = join(ctx.dir, `import-cli-${i}.db`);
      const t0 = performance.now();
      const out = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), 'import', file, '-b', `sqlite:${target}`], {
        encoding: 'utf8',
        env: { ...process.env, REGISTRY_NODE: 'bench-host' },
      });
      if (out.status !== 0) throw new Error(`registry import failed: ${out.stderr}`);
      times.cli.push(performance.now() - t0);
    }
    const raw = median(times.raw);
    const rawIdx = median(times['raw-idx']);
    const imp = median(times.import);
    const atomic = median(times.atomic);
    const cli = median(times.cli);
    const rate = (ms: number) => `${Math.round(N / ms)}k entries/s`;
    ctx.add({
      name: `import ${N / 1e6}M NDJSON entries into sqlite (streamed, validated, atomic batches of 20k)`,
      value: `${(imp / 1000).toFixed(2)} s (${rate(imp)})`,
      baseline: `${(raw / 1000).toFixed(2)} s hand-written importer (same reader, JSON.parse, prepared INSERT, 50k-row txns, plain table: same columns and key, no procreg triggers)`,
      ratio: raw / imp,
      target: '>= 0.67',
      note: `time ${(imp / raw).toFixed(2)}× raw (target <= 1.5×); peak RSS ${rss.import?.toFixed(0)} MB (target < 300; raw ${rss.raw?.toFixed(0)} MB). --atomic (spool + one txn): ${(atomic / 1000).toFixed(2)} s = ${(atomic / raw).toFixed(2)}× raw, peak RSS ${rss.atomic?.toFixed(0)} MB. CLI \`registry import\`: ${(cli / 1000).toFixed(2)} s = ${(cli / raw).toFixed(2)}× raw. Raw with the (node, pid, pid_start) index procreg keeps: ${(rawIdx / 1000).toFixed(2)} s = ${(rawIdx / raw).toFixed(2)}× raw; import ${(imp / rawIdx).toFixed(2)}× that`,
    });
  },
};

export default bench;
