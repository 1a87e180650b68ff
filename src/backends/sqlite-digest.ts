/**
 * Bucket digests of a SQLite registry file, computed in a worker thread over its own read-only
 * connection: the SQLite backend's `offThreadDigests` (contract.ts). `verify` runs one per side,
 * so two local files are scanned at the same time (each "where its data lives") instead of one
 * after the other. The result is exactly the SQLite backend's `digest` (src/backends/sqlite.ts):
 * same entries (stored rows), same identity text, same buckets.
 */
import { statSync } from 'node:fs';
import type { BucketDigests, DigestPlan } from './contract.js';
import { BucketDigester } from '../core/digest.js';

export interface DigestJob {
  file: string;
  namespaces: DigestPlan;
}

/** Set in the digest worker's environment. */
const WORKER_ENV = 'PROCREG_SQLITE_DIGEST_WORKER';

/** Below this many bytes of SQLite file (about 20,000 entries) a worker thread costs more than it saves. */
const OFF_THREAD_MIN_BYTES = 2 * 1024 * 1024;

/** The off-thread digester of a SQLite file when it is large enough for a worker to pay, else undefined. */
export function offThreadDigester(
  file: string,
): ((plan: DigestPlan) => Promise<Map<string, BucketDigests>>) | undefined {
  try {
    const size = statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    if (size < OFF_THREAD_MIN_BYTES) return undefined;
  } catch {
    return undefined; // not a plain file (e.g. in memory): digest in process
  }
  return (namespaces) => digestFileOffThread({ file, namespaces });
}

/** Run a job in a worker thread; resolves namespace → digests. */
export async function digestFileOffThread(job: DigestJob): Promise<Map<string, BucketDigests>> {
  // Loaded here, not at the top: node:worker_threads costs a CLI start ~1–2 ms (docs/cold-start.md).
  const { Worker } = await import('node:worker_threads');
  return new Promise((resolve, reject) => {
    // execArgv: [] — the parent's flags (e.g. --input-type) do not all apply to a file worker.
    // This module's own file (named, so that a bundle's copy starts it too: scripts/build-lite.ts);
    // WORKER_ENV tells it that it is the worker.
    const w = new Worker(new URL('./sqlite-digest.js', import.meta.url), {
      workerData: job,
      execArgv: [],
      env: { ...process.env, [WORKER_ENV]: '1' },
    });
    w.once('message', (m: { ok: true; result: Array<[string, BucketDigests]> } | { ok: false; error: string }) => {
      if (m.ok) resolve(new Map(m.result));
      else reject(new Error(m.error));
    });
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`digest worker exited with code ${code}`));
    });
  });
}

async function work(job: DigestJob): Promise<Array<[string, BucketDigests]>> {
  const { loadBetterSqlite } = await import('./sqlite.js');
  const db = new (loadBetterSqlite())(job.file, { readonly: true, fileMustExist: true });
  try {
    const st = db.prepare('SELECT key, pid, node, meta FROM registrations WHERE namespace = ?').raw();
    const out: Array<[string, BucketDigests]> = [];
    // One read transaction: every namespace from the same snapshot.
    db.exec('BEGIN');
    for (const { namespace, buckets } of job.namespaces) {
      const d = new BucketDigester(buckets);
      for (const row of st.iterate(namespace) as IterableIterator<[string, number, string, string]>)
        d.addStored(namespace, row[0], row[1], row[2], row[3]);
      out.push([namespace, d.result()]);
    }
    db.exec('COMMIT');
    return out;
  } finally {
    db.close();
  }
}

if (process.env[WORKER_ENV]) {
  void import('node:worker_threads').then(({ isMainThread, parentPort, workerData }) => {
    if (isMainThread || !parentPort || !(workerData as DigestJob | undefined)?.file) return;
    work(workerData as DigestJob).then(
      (result) => parentPort.postMessage({ ok: true, result }),
      (err: Error) => parentPort.postMessage({ ok: false, error: err.message }),
    );
  });
}
