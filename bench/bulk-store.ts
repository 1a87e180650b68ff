/**
 * A raw bulk loader for the large stores of the index and scale benches (10M rows take minutes
 * through the triggers): the backend makes an empty store, every trigger on `registrations`
 * (metadata index, per-process counts, change log) is dropped, the rows go in by plain prepared
 * INSERTs in 100k-row transactions, and the next writable open of the backend rebuilds the
 * index, the counts and the triggers, one pass each (as it does for a store from an older procreg).
 */
import { statSync } from 'node:fs';
import { loadBetterSqlite } from '../src/backends/sqlite.js';
import { ProcessRegistry } from '../src/registry/service.js';
import type { OpenOptions } from '../src/registry/service-types.js';

export type RowValues = [
  namespace: string,
  key: string,
  pid: number,
  node: string,
  meta: string,
  registeredAt: number,
  updatedAt: number,
  pidStart: number | null,
];

export interface Loaded {
  /** The raw INSERTs (ms). */
  insertMs: number;
  /** The backend's first open after them: index, counts and triggers rebuilt (ms). */
  rebuildMs: number;
}

/** Fill `file` with `n` rows from `row(i)`, then let the backend rebuild what it derives from them. */
export async function bulkStore(
  file: string,
  n: number,
  row: (i: number) => RowValues,
  open: Partial<OpenOptions> = {},
): Promise<Loaded> {
  const opts = { backend: `sqlite:${file}`, cleanupInterval: 0, stats: false, ...open } as OpenOptions;
  await (await ProcessRegistry.open(opts)).close();
  const db = new (loadBetterSqlite())(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  for (const t of db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'registrations'")
    .pluck()
    .all() as string[])
    db.exec(`DROP TRIGGER "${t}"`);
  const ins = db.prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) ins.run(...row(i));
  });
  const t0 = performance.now();
  for (let i = 0; i < n; i += 100_000) batch(i, Math.min(n, i + 100_000));
  const insertMs = performance.now() - t0;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const t1 = performance.now();
  await (await ProcessRegistry.open(opts)).close();
  const rebuildMs = performance.now() - t1;
  return { insertMs, rebuildMs };
}

/** A file's size in bytes (0 when missing). */
export function fileSize(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}
