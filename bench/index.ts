/**
 * `npm run bench`: runs every bench module (dist/bench/*.bench.js, or BENCH=name1,name2) and
 * prints one table: each figure beside its baseline measured in the same run, as a ratio.
 * BENCH_QUICK=1 shrinks datasets for a smoke run; BENCH_JSON=FILE also writes the rows as JSON.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTable, viewFor } from '../src/cli/output.js';
import type { BenchModule, Row } from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const only = process.env.BENCH?.split(',').filter(Boolean);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .sort();
const rows: Array<Row & { module: string }> = [];
const dir = mkdtempSync(join(tmpdir(), 'procreg-bench-'));
const quick = process.env.BENCH_QUICK === '1';

function meets(r: Row): string {
  if (!r.target) return '';
  const m = /^(>=|<=)\s*([\d.]+)/.exec(r.target);
  if (!m) return '';
  const v = Number(m[2]);
  return (m[1] === '>=' ? r.ratio >= v : r.ratio <= v) ? 'yes' : 'NO';
}

try {
  for (const f of files) {
    const mod = (await import(join(here, f))).default as BenchModule;
    if (only && !only.includes(mod.name)) continue;
    process.stderr.write(`bench ${mod.name}…\n`);
    try {
      await mod.run({
        quick,
        dir,
        add: (r) => {
          rows.push({ ...r, module: mod.name });
          process.stderr.write(`  ${r.name}: ${r.value} vs ${r.baseline} → ${r.ratio.toFixed(2)}× ${r.target ?? ''}\n`);
        },
      });
    } catch (err) {
      process.stderr.write(`bench ${mod.name} failed: ${(err as Error).stack}\n`);
      process.exitCode = 1;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const columns = ['module', 'measure', 'procreg', 'baseline (same run)', 'ratio', 'target', 'met', 'note'];
console.log(
  renderTable(
    {
      columns: columns.map((header) => ({ header: header.toUpperCase() })),
      rows: rows.map((r) => [
        r.module,
        r.name,
        String(r.value),
        String(r.baseline),
        `${r.ratio.toFixed(2)}×`,
        r.target ?? '',
        meets(r),
        r.note ?? '',
      ]),
    },
    viewFor({ output: 'wide' }),
  ),
);
console.log(
  'ratio: procreg throughput / baseline throughput (for start-up and size rows: as the target says). Medians of interleaved rounds.',
);
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify(rows, null, 2));
