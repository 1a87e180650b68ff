/**
 * The SQLite backend's `compact` (contract.ts): ANALYZE, PRAGMA optimize and VACUUM, then the
 * WAL truncated. The migration's optimize phase calls it on its target after the bulk copy.
 */
import type DatabaseT from 'better-sqlite3';
import type { CompactReport } from './contract.js';

export function compactDatabase(db: DatabaseT.Database): CompactReport {
  const size = () =>
    (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  const bytesBefore = size();
  db.exec('ANALYZE');
  db.pragma('optimize');
  db.exec('VACUUM');
  db.pragma('wal_checkpoint(TRUNCATE)');
  return { bytesBefore, bytesAfter: size(), how: 'analysed and vacuumed' };
}
