/**
 * The phase contract and the runner. Every phase module exports a `Phase` with:
 *   plan   — what `up` would do, computed read-only (`--dry-run` and `migrate plan`);
 *   up     — do it, recording progress and proof in the journal; resumable after a kill;
 *   down   — undo it (`migrate rollback`), while the old store exists;
 *   verify — re-check the phase's proof now.
 * `runPhase` holds the lock, checks the order of phases and turns a thrown error into a
 * journal that still says where the run stopped.
 */
import { InvalidInputError, RegistryError } from '../backends/contract.js';
import { Digest } from '../registry/digest.js';
import type { Migration, OpenState } from './context.js';
import { PHASES, type PhaseName, type PhaseRecord } from './journal.js';
import { liveEntries, type VerifyReport } from './verify.js';

export interface PhaseArgs {
  /** wrap: the store to migrate from. */
  from?: string;
  /** hybrid, distribute: the store to migrate to. */
  to?: string;
  /** cutover, optimize: accept that the keys the report names answer differently afterwards. */
  acceptChanges?: boolean;
  /** cutover, distribute: running nodes (http://HOST:PORT) to switch to the phase's store (src/migrations/nodes.ts). */
  nodes?: string[];
}

export interface Plan {
  phase: PhaseName;
  /** What up would do, step by step. */
  steps: string[];
  from?: string;
  to?: string;
  /** Sizes known in advance. */
  counts?: Record<string, number>;
  details?: Record<string, unknown>;
}

export interface PhaseResult {
  phase: PhaseName;
  action: 'up' | 'down' | 'verify';
  /** True when the phase was already done and nothing ran. */
  alreadyDone?: boolean;
  /** True when a killed run was resumed. */
  resumed?: boolean;
  record?: PhaseRecord;
  verify?: VerifyReport | ShadowReport | WrapProof;
  notes: string[];
}

export interface ShadowReport {
  equivalent: boolean;
  keys: number;
  agree: number;
  /** Disagreements on keys where legacy lookup and listing disagree already (design §5). */
  anomalies: number;
  mismatches: number;
  samples: Array<{ namespace: string; key: string; old: unknown; new: unknown; anomaly: boolean }>;
  /**
   * Every key whose answer changes once the target serves alone: `before` is what callers saw (the
   * old store's own lookup path), `after` the new effective view (the target). By name, never sampled.
   */
  changed: ChangedAnswer[];
}

export interface ChangedAnswer {
  namespace: string;
  key: string;
  before: { pid: number; node: string } | null;
  after: { pid: number; node: string } | null;
  reason: string;
}

/** `ns/key: pid 100 → 200 (reason)` for notes and errors. */
export function formatChanged(c: ChangedAnswer): string {
  const side = (v: ChangedAnswer['before']) => (v ? `pid ${v.pid}@${v.node}` : 'not found');
  return `${c.namespace}/${c.key}: ${side(c.before)} → ${side(c.after)} (${c.reason})`;
}

export interface WrapProof {
  equivalent: boolean;
  namespaces: Record<string, { service: string; raw: string; count: number }>;
}

/** Test and progress hooks of the copying phases. */
export interface PhaseHooks {
  /** Entries per copy batch. */
  batch?: number;
  /** After each batch is written and journaled. */
  onBatch?(copied: number): void | Promise<void>;
}

export interface Phase {
  name: PhaseName;
  summary: string;
  plan(m: Migration, args: PhaseArgs): Promise<Plan>;
  up(m: Migration, args: PhaseArgs, hooks?: PhaseHooks): Promise<PhaseResult>;
  down(m: Migration): Promise<PhaseResult>;
  verify(m: Migration): Promise<PhaseResult>;
}

/** Exit 5: the states differ (the phase refused to proceed). */
export class DifferentError extends RegistryError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('DIFFERENT', message, { details });
  }
}

/** Check the phase may run now: the previous phase done, or this one interrupted (resume). */
export function checkOrder(m: Migration, phase: PhaseName): { resume?: PhaseRecord; done?: PhaseRecord } {
  const j = m.journal;
  const interrupted = j.interrupted();
  if (interrupted && interrupted.phase !== phase) {
    throw new InvalidInputError(
      `phase ${interrupted.phase} was interrupted: rerun \`registry migrate ${interrupted.phase}\` to resume it, or \`registry migrate rollback\``,
    );
  }
  if (interrupted) return { resume: interrupted };
  const rec = j.record(phase);
  const idx = PHASES.indexOf(phase);
  const cur = j.current();
  const curIdx = cur === undefined ? -1 : PHASES.indexOf(cur);
  if (rec?.status === 'done' && curIdx >= idx) return { done: rec };
  if (curIdx !== idx - 1) {
    const need = PHASES[idx - 1];
    throw new InvalidInputError(
      cur === undefined
        ? `phase ${phase} needs phase ${need} first: run \`registry migrate ${need}\``
        : `the migration is at phase ${cur}; phase ${phase} needs ${need} done first`,
    );
  }
  return {};
}

/** The note of a rerun that did nothing. */
export function alreadyDoneNote(phase: PhaseName): string {
  return `${phase} is already done`;
}

/** What `up` answers when its phase is already done (reruns are no-ops). */
export function alreadyDone(phase: PhaseName, record: PhaseRecord): PhaseResult {
  return { phase, action: 'up', alreadyDone: true, record, notes: [alreadyDoneNote(phase)] };
}

/** Run `up` under the lock. */
export async function runPhase(m: Migration, phase: Phase, args: PhaseArgs, hooks?: PhaseHooks): Promise<PhaseResult> {
  m.lock.acquire(`migrate ${phase.name}`);
  try {
    return await phase.up(m, args, hooks);
  } finally {
    m.lock.release();
    await m.close();
  }
}

/** Per-namespace digests of the live entries through a service (bounded memory). */
export async function namespaceDigests(
  s: OpenState,
  m?: Migration,
  label = 'digest',
): Promise<{ digests: Record<string, string>; counts: Record<string, number>; total: number }> {
  const digests: Record<string, string> = {};
  const counts: Record<string, number> = {};
  let total = 0;
  for (const ns of await s.registry.namespaces()) {
    const d = new Digest();
    for await (const e of liveEntries(s.registry, ns)) {
      d.add(e);
      if (++total % 10_000 === 0) m?.progress(label, total);
    }
    if (d.count > 0) {
      digests[ns] = d.hex();
      counts[ns] = d.count;
    }
  }
  return { digests, counts, total };
}

/** The record of a done phase, or a clear error. */
export function doneRecord(m: Migration, phase: PhaseName): PhaseRecord {
  const r = m.journal.record(phase);
  if (!r || r.status !== 'done')
    throw new InvalidInputError(`phase ${phase} is not done in ${m.journal.store.location}: nothing to check`);
  return r;
}

/** Mark the latest record of a phase rolled back (done by `down`). */
export function markRolledBack(m: Migration, phase: PhaseName): PhaseRecord | undefined {
  const r = m.journal.record(phase);
  if (r) {
    r.status = 'rolled-back';
    r.finishedAt = Date.now();
    delete r.cursor;
    m.journal.save();
  }
  return r;
}

/**
 * Copy `source` into `target` resuming from the record's cursor (saved in the journal after every
 * batch), then a repair pass for writes that raced the copy, then the proof: both equal.
 */
export async function backfill(
  m: Migration,
  rec: PhaseRecord,
  source: OpenState,
  target: OpenState,
  opts: PhaseHooks = {},
): Promise<{ copied: number; repaired: number; removed: number; verify: VerifyReport }> {
  const { copyState, syncState } = await import('./copy.js');
  const { verifyStates } = await import('./verify.js');
  const total = await source.registry.storedCount();
  const res = await copyState(source.registry, target.registry, {
    cursor: rec.cursor,
    batch: opts.batch,
    onBatch: async (cursor) => {
      rec.cursor = cursor;
      m.journal.save();
      m.progress(`${rec.phase}: copy`, cursor.copied, total);
      await opts.onBatch?.(cursor.copied);
    },
  });
  const sync = await syncState(source.registry, target.registry);
  const verify = await verifyStates(source.registry, target.registry, { maxDiffs: 20 });
  if (!verify.equivalent) {
    throw new DifferentError(
      `${target.url} still differs from ${source.url} after the copy (${verify.totals.onlyInA} missing, ${verify.totals.onlyInB} extra, ${verify.totals.differing} differing): writes are racing the copy; rerun to resume`,
      { verify },
    );
  }
  return { copied: res.copied, repaired: sync.written, removed: sync.removed, verify };
}
