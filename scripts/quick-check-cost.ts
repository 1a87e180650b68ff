/**
 * What `checkIntegrity` (SQLite `PRAGMA quick_check`) costs before a dump or an --all-namespaces
 * read, against reading the store in full. Run: `npm run build && node dist/scripts/quick-check-cost.js [N…]`
 * (default 100000 1000000 entries). Figures in docs/design.md §2.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRegistry } from '../src/registry/service.js';

const sizes = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'procreg-quick-check-'));
try {
  for (const n of sizes.length ? sizes : [100_000, 1_000_000]) {
    const file = join(dir, `r${n}.db`);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, stats: false });
    for (let i = 0; i < n; i += 10_000) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 10_000); j++)
        batch.push({ key: `svc-${j}`, pid: 1 + (j % 5000), node: 'elsewhere', meta: { role: 'worker', i: j } });
      await reg.bulkRegister(batch);
    }
    await reg.close();
    const r = await ProcessRegistry.open({
      backend: `sqlite:${file}`,
      cleanupInterval: 0,
      stats: false,
      create: false,
    });
    const times: number[] = [];
    for (let k = 0; k < 3; k++) times.push((await r.backend.checkIntegrity!()).checkMs);
    const t0 = performance.now();
    let read = 0;
    for await (const _ of r.entries({ namespace: 'default', pageSize: 2000 })) read++;
    const readMs = performance.now() - t0;
    await r.close();
    const mib = statSync(file).size / 1048576;
    console.log(
      `${n} entries (${mib.toFixed(0)} MiB): quick_check ${times.map((t) => t.toFixed(0)).join(' / ')} ms (warm cache); reading all ${read} entries ${readMs.toFixed(0)} ms`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
