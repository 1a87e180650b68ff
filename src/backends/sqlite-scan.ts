/**
 * The SQLite backend's bounded scans (issue 14 §7): each call does a small, fixed amount of work
 * so that callers above (the sweep in src/registry/sweep.ts, the service's list) can yield to the
 * event loop between calls instead of holding it for a whole O(N) scan.
 *
 * - `processesAfter`: the next distinct (pid, pid_start) of a node by seeking the
 *   (node, pid, pid_start) index, one seek per process (never a GROUP BY over every row).
 * - `removeProcessEntries`: delete at most `limit` entries of one process, in its own statement.
 */
import type DatabaseT from 'better-sqlite3';
import type { BucketDigests, ProcessSummary } from './contract.js';
import { BucketDigester } from '../core/digest.js';

type Proc = Pick<ProcessSummary, 'pid' | 'pidStart'>;

const SQL = {
  firstProc: 'SELECT pid, pid_start FROM registrations WHERE node = ? ORDER BY node, pid, pid_start LIMIT 1',
  // The pid's next start (NULL sorts first: after NULL, look past MIN_SAFE_INTEGER).
  nextStart:
    'SELECT pid_start FROM registrations WHERE node = ? AND pid = ? AND pid_start > ? ORDER BY node, pid, pid_start LIMIT 1',
  nextPid: 'SELECT pid, pid_start FROM registrations WHERE node = ? AND pid > ? ORDER BY node, pid, pid_start LIMIT 1',
  removeSome: `DELETE FROM registrations WHERE (namespace, key) IN (
      SELECT namespace, key FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ? LIMIT ?)`,
} as const;

type Stmts = Record<keyof typeof SQL, DatabaseT.Statement>;
const prepared = new WeakMap<DatabaseT.Database, Stmts>();

function stmts(db: DatabaseT.Database): Stmts {
  let s = prepared.get(db);
  if (!s) {
    s = {
      firstProc: db.prepare(SQL.firstProc).raw(),
      nextStart: db.prepare(SQL.nextStart).pluck(),
      nextPid: db.prepare(SQL.nextPid).raw(),
      removeSome: db.prepare(SQL.removeSome),
    };
    prepared.set(db, s);
  }
  return s;
}

/** The next `limit` distinct processes of `node` after `after` (from the first when undefined). */
export function processesAfter(db: DatabaseT.Database, node: string, after: Proc | undefined, limit: number): Proc[] {
  const st = stmts(db);
  const out: Proc[] = [];
  const next = (p: Proc): Proc | undefined => {
    const start = st.nextStart.get(node, p.pid, p.pidStart ?? Number.MIN_SAFE_INTEGER) as number | undefined;
    if (start !== undefined) return { pid: p.pid, pidStart: start };
    const row = st.nextPid.get(node, p.pid) as [number, number | null] | undefined;
    return row && { pid: row[0], pidStart: row[1] };
  };
  let cur: Proc | undefined;
  if (after) cur = next(after);
  else {
    const row = st.firstProc.get(node) as [number, number | null] | undefined;
    cur = row && { pid: row[0], pidStart: row[1] };
  }
  while (cur && out.length < limit) {
    out.push(cur);
    if (out.length < limit) cur = next(cur);
  }
  return out;
}

/** Delete at most `limit` entries of one process of `node`; returns how many. */
export function removeProcessEntries(db: DatabaseT.Database, node: string, proc: Proc, limit: number): number {
  return stmts(db).removeSome.run(node, proc.pid, proc.pidStart, limit).changes;
}

const DIGEST_CHUNK = 128;
const DIGEST_SLICE_MS = 4;

/**
 * Per-bucket digests of a namespace read in key order, DIGEST_CHUNK rows per statement, yielding
 * to the event loop (setImmediate) every DIGEST_SLICE_MS: a digest of a million entries no longer
 * holds the loop for seconds. Not one snapshot: entries written meanwhile may or may not count
 * (a digest compared while writes flow differs anyway).
 */
export async function digestInSlices(
  db: DatabaseT.Database,
  namespace: string,
  buckets: number,
): Promise<BucketDigests> {
  const first = db
    .prepare(`SELECT key, pid, node, meta FROM registrations WHERE namespace = ? ORDER BY key LIMIT ?`)
    .raw();
  const next = db
    .prepare(`SELECT key, pid, node, meta FROM registrations WHERE namespace = ? AND key > ? ORDER BY key LIMIT ?`)
    .raw();
  const d = new BucketDigester(buckets);
  let after: string | undefined;
  let slice = performance.now();
  for (;;) {
    const rows = (
      after === undefined ? first.all(namespace, DIGEST_CHUNK) : next.all(namespace, after, DIGEST_CHUNK)
    ) as Array<[string, number, string, string]>;
    for (const [key, pid, node, meta] of rows) d.addStored(namespace, key, pid, node, meta);
    if (rows.length < DIGEST_CHUNK) return d.result();
    after = rows[rows.length - 1]![0];
    if (performance.now() - slice >= DIGEST_SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
  }
}
