/**
 * Phase 3, cut over: make the hybrid the active backend (the config's default profile becomes
 * `migrate-hybrid`). First a catch-up repair (writes that reached only the old store), then
 * shadow reads: every key of either store is looked up through the old path (the old store's own
 * semantics) and the new one (the hybrid); answers must agree. Keys where the legacy lookup and
 * listing already disagree (design §5) are counted apart as anomalies, not failures.
 */
import type { Registration } from '../../backends/contract.js';
import { HybridBackend } from '../../backends/hybrid.js';
import { canonicalJson } from '../../registry/digest.js';
import { ProcessRegistry } from '../../registry/service.js';
import { compareKeys, zipByKey } from '../../core/keys.js';
import { syncState } from '../copy.js';
import { type Migration, type OpenState, PROFILE } from '../context.js';
import {
  alreadyDone,
  checkOrder,
  DifferentError,
  doneRecord,
  markRolledBack,
  type ChangedAnswer,
  formatChanged,
  type Phase,
  type ShadowReport,
} from '../phase.js';
import { liveEntries } from '../verify.js';
import { checkNodeUrls, moveNodes, moveNodesBack } from '../nodes.js';

export const cutover: Phase = {
  name: 'cutover',
  summary: 'make the hybrid the active backend, proven by shadow reads',

  async plan(m, args) {
    const rec = doneRecord(m, 'hybrid');
    return {
      phase: 'cutover',
      from: rec.from,
      to: `hybrid:(${rec.from} + ${rec.to})`,
      steps: [
        `repair keys written to ${rec.from} only since the backfill`,
        'shadow-read every key through the old store and through the hybrid; real mismatches stop the cut-over',
        `make ${PROFILE.hybrid} the default profile of ${m.configPath} (was ${m.defaultProfile() ?? '(none)'})`,
        ...(args.nodes ?? []).map((n) => `switch the running node ${n} to the hybrid`),
      ],
    };
  },

  async up(m, args) {
    checkNodeUrls(args.nodes);
    const { done, resume } = checkOrder(m, 'cutover');
    if (done) return alreadyDone('cutover', done);
    const h = doneRecord(m, 'hybrid');
    const rec = resume ?? m.journal.begin({ phase: 'cutover', from: h.from, to: PROFILE.hybrid });
    const s = await m.open(h.from!, 'source');
    const t = await m.open(h.to!, 'target');
    const sync = await syncState(s.registry, t.registry);
    const shadow = await shadowReads(m, s, t);
    if (!shadow.equivalent) {
      throw new DifferentError(
        `shadow reads disagree on ${shadow.mismatches} keys (besides ${shadow.anomalies} legacy anomalies): the cut-over was not made`,
        { shadow },
      );
    }
    refuseUnacknowledged('cutover', shadow.changed, args.acceptChanges);
    const hybrid = m.readConfig().profiles?.[PROFILE.hybrid];
    const nodeNotes = hybrid ? await moveNodes(m, rec, args.nodes ?? [], hybrid) : [];
    const previousDefault = m.setDefault(PROFILE.hybrid);
    m.journal.finish(rec, {
      previousDefault,
      counts: {
        keys: shadow.keys,
        agree: shadow.agree,
        anomalies: shadow.anomalies,
        mismatches: 0,
        repaired: sync.written + sync.removed,
      },
      details: { ...rec.details, samples: shadow.samples, changed: shadow.changed },
    });
    return {
      phase: 'cutover',
      action: 'up',
      record: rec,
      verify: shadow,
      notes: [
        `shadow reads: ${shadow.agree} of ${shadow.keys} keys agree, ${shadow.anomalies} legacy anomalies counted apart`,
        ...changedNotes(shadow.changed),
        `default profile is now ${PROFILE.hybrid}`,
        ...nodeNotes,
      ],
    };
  },

  async down(m) {
    const rec = doneRecord(m, 'cutover');
    const nodeNotes = await moveNodesBack(m, rec);
    m.setDefault(rec.previousDefault ?? null);
    markRolledBack(m, 'cutover');
    return {
      phase: 'cutover',
      action: 'down',
      record: rec,
      notes: [`default profile back to ${rec.previousDefault ?? '(none)'}`, ...nodeNotes],
    };
  },

  async verify(m) {
    const rec = doneRecord(m, 'cutover');
    const h = doneRecord(m, 'hybrid');
    const shadow = await shadowReads(m, await m.open(h.from!, 'source'), await m.open(h.to!, 'target'));
    return {
      phase: 'cutover',
      action: 'verify',
      record: rec,
      verify: shadow,
      notes: [`${shadow.mismatches} mismatches, ${shadow.anomalies} legacy anomalies`, ...changedNotes(shadow.changed)],
    };
  },
};

/** One note per changed answer, by name. */
export function changedNotes(changed: ChangedAnswer[]): string[] {
  return changed.map((c) => `answer changes: ${formatChanged(c)}`);
}

/**
 * A changed answer fails the phase (exit 5, nothing switched) unless the caller acknowledged it with
 * --accept-changes; the error names every key.
 */
export function refuseUnacknowledged(phase: string, changed: ChangedAnswer[], accepted: boolean | undefined): void {
  if (changed.length === 0 || accepted) return;
  throw new DifferentError(
    `${phase}: ${changed.length} key(s) would answer differently afterwards: ${changed.map(formatChanged).join('; ')}: nothing was switched; review them, then rerun with --accept-changes`,
    { changed },
  );
}

/**
 * Look every key of either store up through the old path and the new (hybrid) path. The old
 * path's listing tells the anomalies apart: a key whose old lookup differs from its old listing.
 */
export async function shadowReads(m: Migration, oldStore: OpenState, target: OpenState): Promise<ShadowReport> {
  // The new path is a hybrid made of the two stores' backends: building a backend, not reading one.
  const hybridBackend = new HybridBackend(oldStore.registry.backend, target.registry.backend, {
    nodeName: oldStore.registry.nodeName,
    isAlive: (e) => oldStore.registry.isAlive(e),
  });
  // Not closed here: the two backends belong to the migration's open stores.
  const newPath = new ProcessRegistry(hybridBackend, {
    nodeName: oldStore.registry.nodeName,
    cleanupInterval: 0,
    stats: false,
  });
  const r: ShadowReport = {
    equivalent: true,
    keys: 0,
    agree: 0,
    anomalies: 0,
    mismatches: 0,
    samples: [],
    changed: [],
  };
  const brief = (e: Registration | undefined) => (e ? { pid: e.pid, node: e.node } : null);
  const same = (a: Registration | undefined, b: Registration | undefined) =>
    (!a && !b) ||
    (!!a && !!b && a.pid === b.pid && a.node === b.node && canonicalJson(a.meta) === canonicalJson(b.meta));
  const namespaces = [
    ...new Set([...(await oldStore.registry.namespaces()), ...(await target.registry.namespaces())]),
  ].sort(compareKeys);
  for (const namespace of namespaces) {
    for await (const [listed, other] of zipByKey(
      liveEntries(oldStore.registry, namespace),
      liveEntries(target.registry, namespace),
    )) {
      const key = (listed ?? other)!.key;
      r.keys++;
      if (r.keys % 10_000 === 0) m.progress('cutover: shadow reads', r.keys);
      const oldAnswer = await oldStore.registry.lookup(key, { namespace });
      const newAnswer = await newPath.lookup(key, { namespace });
      const afterAnswer = await target.registry.lookup(key, { namespace });
      if (!same(oldAnswer, afterAnswer)) {
        const reason =
          oldAnswer && listed && oldAnswer.pid !== listed.pid
            ? `pid mismatch between the registry and backup tables: legacy lookup reads registry (pid ${oldAnswer.pid}), the listing and the target the backup row (pid ${listed.pid})`
            : oldAnswer && listed && !same(oldAnswer, listed)
              ? 'metadata: the legacy lookup answers from the registry table with {}, the listing and the target carry the backup row metadata'
              : !same(oldAnswer, listed)
                ? 'the legacy lookup and listing disagree; the target holds the listing'
                : 'the target answers differently from the old store';
        r.changed.push({ namespace, key, before: brief(oldAnswer), after: brief(afterAnswer), reason });
      }
      if (same(oldAnswer, newAnswer)) {
        r.agree++;
        continue;
      }
      const anomaly = !same(oldAnswer, listed);
      if (anomaly) r.anomalies++;
      else r.mismatches++;
      if (r.samples.length < 20)
        r.samples.push({ namespace, key, old: oldAnswer ?? null, new: newAnswer ?? null, anomaly });
    }
  }
  r.equivalent = r.mismatches === 0;
  return r;
}
