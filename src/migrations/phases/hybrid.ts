/**
 * Phase 2, hybrid: build hybrid(primary = current store, backup = target), backfill the target in
 * bounded memory (resumable: the cursor is journaled after every batch), repair what writes
 * raced the copy, and from then on dual-write through the `migrate-hybrid` profile. Proof: every
 * key of the current store is in the target, equal.
 */
import { InvalidInputError } from '../../backends/contract.js';
import { type Migration, normalizeUrl, PROFILE } from '../context.js';
import {
  alreadyDone,
  backfill,
  checkOrder,
  doneRecord,
  markRolledBack,
  namespaceDigests,
  type Phase,
} from '../phase.js';
import { verifyStates } from '../verify.js';

export const hybrid: Phase = {
  name: 'hybrid',
  summary: 'backfill the target from the current store and dual-write to both from now on',

  async plan(m, args) {
    const from = source(m);
    const to = targetArg(m, args.to);
    const s = await m.open(from, 'source');
    const t = await m.peekTarget(to, '--to');
    const rec = m.journal.interrupted();
    return {
      phase: 'hybrid',
      from,
      to,
      steps: [
        ...(t ? [] : [`create ${to} (it does not exist yet)`]),
        `write profiles ${PROFILE.target} (${to}) and ${PROFILE.hybrid} (hybrid: primary ${from}, backup ${to}); writers using ${PROFILE.hybrid} dual-write`,
        rec?.phase === 'hybrid' && rec.cursor
          ? `resume the backfill after ${rec.cursor.namespace}/${rec.cursor.after ?? ''} (${rec.cursor.copied} copied)`
          : `backfill ${await s.registry.storedCount()} stored entries into ${to} in batches (bounded memory)`,
        'repair keys changed during the copy, then verify the target equals the source',
      ],
      counts: { source: await s.registry.storedCount(), target: t ? await t.registry.storedCount() : 0 },
    };
  },

  async up(m, args, hooks) {
    const { resume, done } = checkOrder(m, 'hybrid');
    if (done) return alreadyDone('hybrid', done);
    const from = source(m);
    let to = targetArg(m, args.to);
    if (resume && resume.to && args.to && normalizeUrl(args.to) !== resume.to) {
      throw new InvalidInputError(
        `the interrupted hybrid phase copies into ${resume.to}: rerun with --to ${resume.to}, or \`registry migrate rollback\` first`,
      );
    }
    if (resume?.to) to = resume.to;
    const s = await m.open(from, 'source');
    const t = await m.openTarget(to, '--to', resume ? 'target' : undefined);
    const rec = resume ?? m.journal.begin({ phase: 'hybrid', from, to });
    m.journal.state.target = to;
    m.setProfile(PROFILE.target, { backend: to });
    m.setProfile(PROFILE.hybrid, { backend: 'hybrid:', backendOpts: { primary: from, backup: to } });
    m.journal.save();
    const r = await backfill(m, rec, s, t, hooks);
    const d = await namespaceDigests(t, m, 'hybrid: digest');
    m.journal.finish(rec, {
      digests: d.digests,
      counts: { copied: r.copied, repaired: r.repaired, removed: r.removed, target: d.total },
    });
    return {
      phase: 'hybrid',
      action: 'up',
      resumed: !!resume,
      record: rec,
      verify: r.verify,
      notes: [
        `${resume ? 'resumed and ' : ''}copied ${r.copied} entries into ${to}; ${r.repaired} rewritten and ${r.removed} removed by the repair pass`,
        `target equals source (${d.total} entries); writers on profile ${PROFILE.hybrid} now dual-write`,
      ],
    };
  },

  async down(m) {
    const rec = m.journal.interrupted()?.phase === 'hybrid' ? m.journal.interrupted()! : doneRecord(m, 'hybrid');
    m.setProfile(PROFILE.hybrid, undefined);
    m.setProfile(PROFILE.target, undefined);
    markRolledBack(m, 'hybrid');
    return {
      phase: 'hybrid',
      action: 'down',
      record: rec,
      notes: [`profiles ${PROFILE.hybrid} and ${PROFILE.target} removed; ${rec.to} was left in place`],
    };
  },

  async verify(m) {
    const rec = doneRecord(m, 'hybrid');
    const s = await m.open(rec.from!, 'source');
    const t = await m.open(rec.to!, 'target');
    const v = await verifyStates(s.registry, t.registry);
    return {
      phase: 'hybrid',
      action: 'verify',
      record: rec,
      verify: v,
      notes: [v.equivalent ? 'target equals source' : 'target differs from source'],
    };
  },
};

function source(m: Migration): string {
  const s = m.journal.state.source;
  if (!s)
    throw new InvalidInputError('no migration source in the journal: run `registry migrate wrap --from URL` first');
  return s;
}

function targetArg(m: Migration, to: string | undefined): string {
  const url = to ?? m.journal.interrupted()?.to ?? m.journal.state.target;
  if (!url)
    throw new InvalidInputError(
      'migrate hybrid needs --to URL, the clean store to fill (e.g. --to sqlite:./registry.db)',
    );
  const n = normalizeUrl(url);
  if (n === m.journal.state.source)
    throw new InvalidInputError(`--to ${url} is the source store itself: pick another store`);
  if (/^(legacy|hybrid):/.test(n))
    throw new InvalidInputError(`--to ${url}: the target must be a clean backend (sqlite:, memory:, etcd://, http://)`);
  return n;
}
