/**
 * healthCheck's counts without reading every row (split from sqlite.ts): processes from index seeks,
 * each judged once, or one covering GROUP BY when there are too many of them.
 */
import type DatabaseT from 'better-sqlite3';
import type { Registration } from './contract.js';
import { procCountRows } from './sqlite-counts.js';

/**
 * The skip-scan costs a few index seeks per process, the GROUP BY a little per row: past
 * max(SKIP_SCAN_MIN, rows / ROWS_PER_SEEK) distinct processes the single scan is cheaper.
 */
const SKIP_SCAN_MIN = 1024;
const ROWS_PER_SEEK = 64;

type Probe = Registration;
export type Stmts = Record<
  'countAll' | 'allProcesses' | 'firstNode' | 'nextNode' | 'firstProc' | 'nextStart' | 'nextPid' | 'countProc',
  DatabaseT.Statement
>;

/**
 * Total and dead registrations without reading every row: `count(*)` is a b-tree page count;
 * distinct (node, pid, pid_start) come from index seeks, each judged once; then only the dead
 * processes' index ranges are counted. Too many processes for their rows: one covering GROUP BY.
 */
export function countDead(
  st: Stmts,
  isAlive: (probe: Probe) => boolean,
): { total: number; dead: number; processes: number; method: 'skip-scan' | 'group-by' } {
  const probe: Probe = {
    namespace: '',
    key: '',
    pid: 0,
    node: '',
    meta: {},
    registeredAt: 0,
    updatedAt: 0,
    pidStart: null,
  };
  const judge = (node: string, pid: number, pidStart: number | null) => {
    probe.node = node;
    probe.pid = pid;
    probe.pidStart = pidStart;
    return isAlive(probe);
  };
  const total = (st.countAll.get() as { n: number }).n;
  const limit = Math.max(SKIP_SCAN_MIN, total / ROWS_PER_SEEK);
  const deadProcs: Array<[string, number, number | null]> = [];
  let processes = 0;
  const pluck = (s: DatabaseT.Statement, ...args: unknown[]) => s.pluck().get(...args) as never;
  for (let node: string | undefined = pluck(st.firstNode); node !== undefined; node = pluck(st.nextNode, node)) {
    for (
      let row = st.firstProc.raw().get(node) as [number, number | null] | undefined;
      row;
      row = st.nextPid.raw().get(node, row[0]) as typeof row
    ) {
      const pid = row[0];
      // The pid's starts in order (NULL first, so after NULL look past MIN_SAFE_INTEGER).
      for (
        let start: number | null | undefined = row[1];
        start !== undefined;
        start = pluck(st.nextStart, node, pid, start ?? Number.MIN_SAFE_INTEGER)
      ) {
        if (++processes > limit) return groupBy(st, judge, total);
        if (!judge(node, pid, start)) deadProcs.push([node, pid, start]);
      }
    }
  }
  let dead = 0;
  for (const [node, pid, start] of deadProcs) dead += pluck(st.countProc, node, pid, start) as number;
  return { total, dead, processes, method: 'skip-scan' };
}

function groupBy(st: Stmts, judge: (node: string, pid: number, pidStart: number | null) => boolean, total: number) {
  let dead = 0;
  let processes = 0;
  for (const p of st.allProcesses.iterate() as IterableIterator<{
    node: string;
    pid: number;
    pid_start: number | null;
    n: number;
  }>) {
    processes++;
    if (!judge(p.node, p.pid, p.pid_start)) dead += p.n;
  }
  return { total, dead, processes, method: 'group-by' as const };
}

/**
 * The same figures from the per-process counts (sqlite-counts.ts): one row per (namespace, process),
 * each process judged once; undefined when the counts are not trusted (the caller counts as above).
 */
export function countDeadFromCounts(
  db: DatabaseT.Database,
  isAlive: (probe: Probe) => boolean,
): { total: number; dead: number; processes: number; method: 'counts' } | undefined {
  const rows = procCountRows(db, undefined);
  if (!rows) return undefined;
  const probe: Probe = { namespace: '', key: '', pid: 0, node: '', meta: {}, registeredAt: 0, updatedAt: 0 };
  const judged = new Map<string, boolean>();
  let total = 0;
  let dead = 0;
  for (const { node, pid, pidStart, n } of rows) {
    total += n;
    const id = `${node}\u0000${pid}\u0000${pidStart}`;
    let alive = judged.get(id);
    if (alive === undefined) {
      probe.node = node;
      probe.pid = pid;
      probe.pidStart = pidStart;
      judged.set(id, (alive = isAlive(probe)));
    }
    if (!alive) dead += n;
  }
  return { total, dead, processes: judged.size, method: 'counts' };
}
