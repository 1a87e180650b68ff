/**
 * Phase 4, optimize: switch to the pure target. A last catch-up repair from the old store, then
 * the proof (`verify` target vs the old store's effective view: equivalent), then the default
 * profile becomes `migrate-target`; the old store is retired (kept on disk, untouched, so
 * `rollback` can return to the hybrid); a SQLite target is analysed and compacted.
 */
import { existsSync } from 'node:fs';
import { parseBackendUrl } from '../../backends/open.js';
import { syncState } from '../copy.js';
import { type Migration, PROFILE } from '../context.js';
import { changedNotes, refuseUnacknowledged, shadowReads } from './cutover.js';
import {
  type ChangedAnswer,
  alreadyDone,
  checkOrder,
  DifferentError,
  doneRecord,
  markRolledBack,
  namespaceDigests,
  type Phase,
} from '../phase.js';
import { verifyStates } from '../verify.js';

export const optimize: Phase = {
  name: 'optimize',
  summary: 'switch to the pure target, retire the old store, build indexes, compact',

  async plan(m) {
    const h = doneRecord(m, 'hybrid');
    doneRecord(m, 'cutover');
    return {
      phase: 'optimize',
      from: h.from,
      to: h.to,
      steps: [
        `repair keys written to ${h.from} only since the cut-over`,
        `verify ${h.to} against the effective view of ${h.from}: must be equivalent`,
        `make ${PROFILE.target} the default profile; ${h.from} is retired (left on disk for rollback)`,
        `compact ${h.to} where its backend can (SQLite: ANALYZE, PRAGMA optimize and VACUUM)`,
      ],
    };
  },

  async up(m, args) {
    const { done, resume } = checkOrder(m, 'optimize');
    if (done) return alreadyDone('optimize', done);
    const h = doneRecord(m, 'hybrid');
    const rec = resume ?? m.journal.begin({ phase: 'optimize', from: h.from, to: h.to });
    const s = await m.open(h.from!, 'source');
    const t = await m.open(h.to!, 'target');
    const sync = await syncState(s.registry, t.registry);
    const v = await verifyStates(t.registry, s.registry, { maxDiffs: 20 });
    if (!v.equivalent)
      throw new DifferentError(`${h.to} is not equivalent to ${h.from} after the repair: nothing was switched`, {
        verify: v,
      });
    // The old path (what callers saw before the migration) against the target, which serves alone
    // from now on: every changed answer is named; one not acknowledged at cutover needs --accept-changes.
    const shadow = await shadowReads(m, s, t);
    const acked = new Set(
      acknowledged(m).map((c) => `${c.namespace}\u0000${c.key}\u0000${c.before?.pid}\u0000${c.after?.pid}`),
    );
    const fresh = shadow.changed.filter(
      (c) => !acked.has(`${c.namespace}\u0000${c.key}\u0000${c.before?.pid}\u0000${c.after?.pid}`),
    );
    refuseUnacknowledged('optimize', fresh, args.acceptChanges);
    const d = await namespaceDigests(t, m, 'optimize: digest');
    await m.close();
    const compacted = await compact(m, h.to!);
    const previousDefault = m.setDefault(PROFILE.target);
    m.journal.finish(rec, {
      previousDefault,
      digests: d.digests,
      counts: { entries: d.total, repaired: sync.written + sync.removed },
      details: { retired: h.from, compacted, changed: shadow.changed },
    });
    return {
      phase: 'optimize',
      action: 'up',
      record: rec,
      verify: v,
      notes: [
        `${h.to} is equivalent to the old store (${d.total} entries) and is now the default (profile ${PROFILE.target})`,
        `${h.from} retired, left on disk for rollback`,
        ...(compacted ? [compacted] : []),
        ...changedNotes(shadow.changed),
      ],
    };
  },

  /** Back to the hybrid: the old store must still exist; writes made since are copied back into it. */
  async down(m) {
    const rec = doneRecord(m, 'optimize');
    const { info, location } = parseBackendUrl(rec.from!);
    if (info.file && !existsSync(location)) {
      throw new DifferentError(`cannot roll back optimize: the retired store ${rec.from} is gone`);
    }
    const s = await m.open(rec.from!, 'retired source');
    const t = await m.open(rec.to!, 'target');
    const sync = await syncState(t.registry, s.registry);
    m.setDefault(rec.previousDefault ?? null);
    markRolledBack(m, 'optimize');
    return {
      phase: 'optimize',
      action: 'down',
      record: rec,
      notes: [
        `${sync.written} entries written and ${sync.removed} removed in ${rec.from} to catch up`,
        `default profile back to ${rec.previousDefault ?? '(none)'}`,
      ],
    };
  },

  async verify(m) {
    const rec = doneRecord(m, 'optimize');
    const v = await verifyStates(
      (await m.open(rec.to!, 'target')).registry,
      (await m.open(rec.from!, 'retired source')).registry,
    );
    return {
      phase: 'optimize',
      action: 'verify',
      record: rec,
      verify: v,
      notes: [
        v.equivalent
          ? 'target equivalent to the retired store'
          : 'target differs from the retired store (writes since optimize?)',
      ],
    };
  },
};

/** What ANALYZE + VACUUM did to the file's size, said as it was: it can grow (ANALYZE adds tables). */
export function compactNote(location: string, before: number, after: number, how = 'analysed and vacuumed'): string {
  const change =
    after < before
      ? `${before - after} bytes smaller`
      : after > before
        ? `${after - before} bytes larger: ANALYZE statistics outweighed what VACUUM freed`
        : 'same size';
  return `${how} ${location}: ${before} → ${after} bytes (${change})`;
}

/** Compact the target where its backend can (`compact?()`: SQLite's VACUUM); a note of what was done. */
async function compact(m: Migration, url: string): Promise<string | undefined> {
  const t = await m.open(url, 'target');
  try {
    const r = await t.registry.compact();
    return r && compactNote(parseBackendUrl(url).location, r.bytesBefore, r.bytesAfter, r.how);
  } finally {
    await m.close();
  }
}

/** The changed answers the cutover recorded as acknowledged (--accept-changes). */
function acknowledged(m: Migration): ChangedAnswer[] {
  const c = m.journal.record('cutover');
  const changed = (c?.details as { changed?: unknown } | undefined)?.changed;
  return Array.isArray(changed) ? (changed as ChangedAnswer[]) : [];
}
