/**
 * Phase 1, wrap: put the service in front of the existing store; nothing moves. Records a
 * baseline digest per namespace and reports the legacy anomalies (keys in both tables with
 * different pids, dead rows, stale index and cache rows). Proof: the digest through the service
 * equals the digest of the raw effective view, read straight from the tables.
 */
import { InvalidInputError } from '../../backends/contract.js';
import { Digest } from '../../registry/digest.js';
import { type Migration, normalizeUrl, type OpenState, PROFILE } from '../context.js';
import {
  alreadyDone,
  checkOrder,
  DifferentError,
  doneRecord,
  markRolledBack,
  namespaceDigests,
  type Phase,
  type WrapProof,
} from '../phase.js';
import type { ProcessRegistry } from '../../registry/service.js';
import { liveEntries } from '../verify.js';

export const wrap: Phase = {
  name: 'wrap',
  summary: 'put the service in front of the existing store, record a baseline digest, report anomalies',

  async plan(m, args) {
    const from = sourceArg(m, args.from);
    const s = await m.open(from);
    const report = await s.registry.inspect();
    const anomalies = report?.counts;
    return {
      phase: 'wrap',
      from,
      steps: [
        `open ${from} behind the registry service (nothing is copied)`,
        'digest every namespace through the service and from the raw stored view; they must be equal',
        report
          ? "report the store's anomalies (legacy: divergent tables, dead rows, stale index/cache rows)"
          : 'no anomaly report for this backend',
        `write profile ${PROFILE.source} and make it the default in ${m.configPath}`,
      ],
      counts: {
        namespaces: (await s.registry.namespaces()).length,
        stored: await s.registry.storedCount(),
        ...(anomalies ?? {}),
      },
    };
  },

  async up(m, args) {
    const { done } = checkOrder(m, 'wrap');
    if (done && args.from && normalizeUrl(args.from) !== done.from) {
      throw new InvalidInputError(
        `this migration already wraps ${done.from}: roll it back first, or use another --journal for ${args.from}`,
      );
    }
    if (done) return alreadyDone('wrap', done);
    const from = sourceArg(m, args.from);
    const s = await m.open(from);
    const rec = m.journal.begin({ phase: 'wrap', from });
    m.journal.state.source = from;
    const proof = await wrapProof(m, s);
    if (!proof.equivalent)
      throw new DifferentError(
        `the service's view of ${from} differs from its raw stored view: ${JSON.stringify(proof.namespaces)}`,
      );
    const anomalies = await s.registry.inspect();
    m.setProfile(PROFILE.source, { backend: from });
    const previousDefault = m.setDefault(PROFILE.source);
    const digests = Object.fromEntries(Object.entries(proof.namespaces).map(([ns, v]) => [ns, v.service]));
    const counts = Object.fromEntries(Object.entries(proof.namespaces).map(([ns, v]) => [`entries:${ns}`, v.count]));
    m.journal.finish(rec, {
      digests,
      counts: {
        entries: Object.values(proof.namespaces).reduce((a, v) => a + v.count, 0),
        ...counts,
        ...(anomalies?.counts ?? {}),
      },
      previousDefault,
      details: anomalies ? { anomalies: anomalies.samples } : {},
    });
    const notes = [`baseline: ${rec.counts!.entries} live entries in ${Object.keys(digests).length} namespaces`];
    if (anomalies) notes.push(anomalies.summary);
    return { phase: 'wrap', action: 'up', record: rec, verify: proof, notes };
  },

  async down(m) {
    const rec = doneRecord(m, 'wrap');
    m.setDefault(rec.previousDefault ?? null);
    m.setProfile(PROFILE.source, undefined);
    markRolledBack(m, 'wrap');
    return {
      phase: 'wrap',
      action: 'down',
      record: rec,
      notes: [`default profile back to ${rec.previousDefault ?? '(none)'}`],
    };
  },

  async verify(m) {
    const rec = doneRecord(m, 'wrap');
    const s = await m.open(rec.from!, 'source');
    const proof = await wrapProof(m, s);
    const baseline =
      Object.entries(rec.digests ?? {}).every(([ns, d]) => proof.namespaces[ns]?.service === d) &&
      Object.keys(proof.namespaces).length === Object.keys(rec.digests ?? {}).length;
    return {
      phase: 'wrap',
      action: 'verify',
      record: rec,
      verify: proof,
      notes: [
        proof.equivalent ? 'service view = raw stored view' : 'service view differs from the raw stored view',
        baseline ? 'unchanged since the baseline' : 'changed since the baseline (writes since wrap)',
      ],
    };
  },
};

function sourceArg(m: Migration, from: string | undefined): string {
  const url = from ?? m.journal.state.source;
  if (!url)
    throw new InvalidInputError(
      'migrate wrap needs --from URL, the store to migrate (e.g. --from legacy:./registry.db)',
    );
  return normalizeUrl(url);
}

/** Digests through the service vs from the raw stored view, per namespace. */
export async function wrapProof(m: Migration, s: OpenState): Promise<WrapProof> {
  const service = await namespaceDigests(s, m, 'wrap: digest');
  const raw = await rawDigests(s.registry);
  const namespaces: WrapProof['namespaces'] = {};
  let equivalent = true;
  for (const ns of new Set([...Object.keys(service.digests), ...Object.keys(raw)])) {
    namespaces[ns] = { service: service.digests[ns] ?? '', raw: raw[ns] ?? '', count: service.counts[ns] ?? 0 };
    if (namespaces[ns].service !== namespaces[ns].raw) equivalent = false;
  }
  return { equivalent, namespaces };
}

/**
 * The raw effective view's digests: the backend's own raw view where it has one (`rawEntries`;
 * legacy: one SQL join over both tables, the listing rule applied row by row, not through the
 * backend's paging). Elsewhere: the backend's raw listing.
 */
async function rawDigests(s: ProcessRegistry): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const raw = s.rawEntries();
  if (raw) {
    const per = new Map<string, Digest>();
    for (const e of raw) {
      let d = per.get(e.namespace);
      if (!d) per.set(e.namespace, (d = new Digest()));
      d.add(e);
    }
    for (const [ns, d] of per) out[ns] = d.hex();
    return out;
  }
  // No raw view of its own: the stored pages (no live paging, no lazy cleanup), live rows.
  for (const ns of await s.namespaces()) {
    const d = new Digest();
    for await (const e of liveEntries(s, ns)) d.add(e);
    if (d.count > 0) out[ns] = d.hex();
  }
  return out;
}
