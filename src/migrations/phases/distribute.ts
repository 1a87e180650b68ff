/**
 * Phase 5, distribute: the same copy-and-verify from the local target into a distributed store
 * (etcd://…, or a registry node), resumable after a kill; then the default profile becomes
 * `migrate-distributed` and nodes switch to it.
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
import { syncState } from '../copy.js';
import { verifyStates } from '../verify.js';
import { checkNodeUrls, moveNodes, moveNodesBack } from '../nodes.js';

export const distribute: Phase = {
  name: 'distribute',
  summary: 'copy and verify into a distributed store (etcd), then switch to it',

  async plan(m, args) {
    const o = doneRecord(m, 'optimize');
    const to = destArg(m, args.to);
    const s = await m.open(o.to!, 'target');
    const t = await m.peekTarget(to, '--to');
    return {
      phase: 'distribute',
      from: o.to,
      to,
      steps: [
        ...(t ? [] : [`create ${to} (it does not exist yet)`]),
        `copy ${await s.registry.storedCount()} entries from ${o.to} into ${to} (resumable)`,
        'repair keys changed during the copy, verify equivalent',
        `write profile ${PROFILE.distributed} and make it the default`,
        ...(args.nodes ?? []).map((n) => `switch the running node ${n} to ${to}`),
      ],
    };
  },

  async up(m, args, hooks) {
    checkNodeUrls(args.nodes);
    const { done, resume } = checkOrder(m, 'distribute');
    if (done) return alreadyDone('distribute', done);
    const o = doneRecord(m, 'optimize');
    if (resume?.to && args.to && normalizeUrl(args.to) !== resume.to) {
      throw new InvalidInputError(
        `the interrupted distribute phase copies into ${resume.to}: rerun with --to ${resume.to}, or \`registry migrate rollback\` first`,
      );
    }
    const to = resume?.to ?? destArg(m, args.to);
    const s = await m.open(o.to!, 'target');
    const t = await m.openTarget(to, '--to', resume ? 'distributed store' : undefined);
    const rec = resume ?? m.journal.begin({ phase: 'distribute', from: o.to, to });
    m.journal.state.distributed = to;
    m.journal.save();
    const r = await backfill(m, rec, s, t, hooks);
    const d = await namespaceDigests(t, m, 'distribute: digest');
    m.setProfile(PROFILE.distributed, { backend: to });
    const nodeNotes = await moveNodes(m, rec, args.nodes ?? [], { backend: to });
    const previousDefault = m.setDefault(PROFILE.distributed);
    m.journal.finish(rec, {
      previousDefault,
      digests: d.digests,
      counts: { copied: r.copied, repaired: r.repaired, removed: r.removed, entries: d.total },
    });
    return {
      phase: 'distribute',
      action: 'up',
      resumed: !!resume,
      record: rec,
      verify: r.verify,
      notes: [
        `copied ${r.copied} entries into ${to}; equivalent (${d.total} entries)`,
        `default profile is now ${PROFILE.distributed}`,
        ...nodeNotes,
      ],
    };
  },

  async down(m) {
    const interrupted = m.journal.interrupted();
    const rec = interrupted?.phase === 'distribute' ? interrupted : doneRecord(m, 'distribute');
    // Running nodes first: each one's switch copies what it wrote into the store it returns to.
    const notes: string[] = await moveNodesBack(m, rec);
    if (rec.status === 'done') {
      // Writes made in the distributed store since the switch go back into the local target.
      const sync = await syncState(
        (await m.open(rec.to!, 'distributed store')).registry,
        (await m.open(rec.from!, 'target')).registry,
      );
      notes.push(`${sync.written} entries written and ${sync.removed} removed in ${rec.from} to catch up`);
      m.setDefault(rec.previousDefault ?? null);
      notes.push(`default profile back to ${rec.previousDefault ?? '(none)'}`);
    }
    m.setProfile(PROFILE.distributed, undefined);
    markRolledBack(m, 'distribute');
    return { phase: 'distribute', action: 'down', record: rec, notes };
  },

  async verify(m) {
    const rec = doneRecord(m, 'distribute');
    const v = await verifyStates(
      (await m.open(rec.from!, 'target')).registry,
      (await m.open(rec.to!, 'distributed store')).registry,
    );
    return {
      phase: 'distribute',
      action: 'verify',
      record: rec,
      verify: v,
      notes: [
        v.equivalent
          ? 'distributed store equivalent to the local target'
          : 'distributed store differs from the local target',
      ],
    };
  },
};

function destArg(m: Migration, to: string | undefined): string {
  const url = to ?? m.journal.state.distributed;
  if (!url)
    throw new InvalidInputError(
      'migrate distribute needs --to URL, the distributed store (e.g. --to etcd://127.0.0.1:2379/registry)',
    );
  const n = normalizeUrl(url);
  if (n === m.journal.state.target || n === m.journal.state.source)
    throw new InvalidInputError(`--to ${url} is a store this migration already uses: pick another`);
  return n;
}
