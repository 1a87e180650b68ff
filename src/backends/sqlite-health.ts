/**
 * The sqlite: backend's health figures and integrity check (split from sqlite.ts).
 */
import type DatabaseT from 'better-sqlite3';
import { statSync } from 'node:fs';
import { type HealthReport, type IntegrityReport, type Registration, statusFromDeadShare } from './contract.js';
import { roundMs } from '../core/time.js';
import { countDead, countDeadFromCounts } from './sqlite-count.js';
import { SQLITE_SCHEMA_VERSION, type Statements } from './sqlite-schema.js';

/** How many problems quick_check lists before it stops. */
const INTEGRITY_PROBLEMS = 5;

/**
 * `PRAGMA quick_check`: every page and b-tree is well formed (not index-vs-table agreement, which
 * the full integrity_check adds at several times the cost).
 */
export function quickCheck(db: DatabaseT.Database): IntegrityReport {
  const t0 = performance.now();
  let problems: string[];
  try {
    problems = db.prepare(`PRAGMA quick_check(${INTEGRITY_PROBLEMS})`).pluck().all() as string[];
  } catch (cause) {
    if (!isDamage(cause)) throw cause;
    problems = [(cause as Error).message];
  }
  const ok = problems.length === 1 && problems[0] === 'ok';
  // quick_check puts several problems in one row under a "*** in database main ***" heading.
  problems = problems
    .flatMap((p) => p.split('\n'))
    .map((p) => p.trim())
    .filter((p) => p && !/^\*\*\* in database/.test(p));
  return { ok, problems: ok ? [] : problems, checkMs: roundMs(performance.now() - t0) };
}

/** healthCheck's figures (throws on a damaged file). */
export function measureHealth(
  db: DatabaseT.Database,
  st: Statements,
  file: string,
  walLimit: number,
  isAlive: (probe: Registration) => boolean,
): HealthReport {
  const t0 = performance.now();
  const { total, dead, processes, method } = db
    .transaction(() => countDeadFromCounts(db, isAlive) ?? countDead(st, isAlive))
    .deferred();
  const alive = total - dead;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pageCount = db.pragma('page_count', { simple: true }) as number;
  const freelist = db.pragma('freelist_count', { simple: true }) as number;
  const journalMode = db.pragma('journal_mode', { simple: true }) as string;
  const main = fileStat(file);
  const wal = fileStat(`${file}-wal`);
  const last = st.info.get('last_cleanup') as { value: string } | undefined;
  const base = statusFromDeadShare(alive, dead);
  const report: HealthReport = {
    ...base,
    reasons: [...base.reasons],
    registrations: total,
    alive,
    dead,
    memoryBytes: pageSize * pageCount,
    lastCleanup: last ? Number(last.value) : null,
    file: file,
    fileBytes: main?.size ?? pageSize * pageCount,
    walBytes: wal?.size ?? 0,
    // In WAL mode the main file is written only by checkpoints: its mtime is the last one.
    lastCheckpoint: journalMode === 'wal' && main ? Math.round(main.mtimeMs) : null,
    journalMode,
    pageSize,
    pageCount,
    freePages: freelist,
    processes,
    schemaVersion: SQLITE_SCHEMA_VERSION,
    countMethod: method,
    checkMs: 0,
  };
  if ((wal?.size ?? 0) > walLimit) {
    if (report.status === 'healthy') report.status = 'degraded';
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    report.reasons.push(
      `the WAL file is ${mib(wal!.size)} (> ${mib(walLimit)}): a long-running reader blocks checkpoints; end it or run \`sqlite3 ${file} 'PRAGMA wal_checkpoint(TRUNCATE)'\``,
    );
  }
  report.checkMs = roundMs(performance.now() - t0);
  return report;
}

/** healthCheck calls the store degraded when the WAL grows past this (checkpoints starved). */
export const WAL_DEGRADED_BYTES = 256 * 1048576; // default of SqliteOptions.walLimitBytes

function fileStat(path: string): { size: number; mtimeMs: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** SQLite's "the file is damaged" errors. */
export function isDamage(cause: unknown): boolean {
  const code = (cause as { code?: string }).code ?? '';
  return /^SQLITE_(CORRUPT|NOTADB)/.test(code) || /malformed|not a database/i.test(String((cause as Error).message));
}
