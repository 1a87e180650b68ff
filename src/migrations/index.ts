/** The five phases in order, and the pieces commands and embedders use. */
import { wrap } from './phases/wrap.js';
import { hybrid } from './phases/hybrid.js';
import { cutover } from './phases/cutover.js';
import { optimize } from './phases/optimize.js';
import { distribute } from './phases/distribute.js';
import type { Phase } from './phase.js';
import { PHASES, type PhaseName } from './journal.js';
import type { Migration } from './context.js';
import { InvalidInputError } from '../backends/contract.js';
import { moveNodesBack } from './nodes.js';

export const phases: Record<PhaseName, Phase> = { wrap, hybrid, cutover, optimize, distribute };

export { Migration, PROFILE, JOURNAL_FILE, normalizeUrl } from './context.js';
export { runPhase, DifferentError, type Phase, type PhaseResult, type Plan } from './phase.js';
export { verifyStates, type VerifyReport } from './verify.js';
export { copyState, syncState } from './copy.js';
export { PHASES, type PhaseName } from './journal.js';

/** Undo the furthest phase (or the interrupted one) under the lock. */
export async function rollback(m: Migration) {
  m.lock.acquire('migrate rollback');
  try {
    const interrupted = m.journal.interrupted();
    const name = interrupted?.phase ?? m.journal.current();
    if (!name) throw new InvalidInputError(`nothing to roll back: no phase is done in ${m.journal.store.location}`);
    if (interrupted && interrupted.phase !== 'hybrid' && interrupted.phase !== 'distribute') {
      // A phase interrupted before it switched the config: nodes it switched go back, its record goes.
      const nodeNotes = await moveNodesBack(m, interrupted);
      interrupted.status = 'rolled-back';
      interrupted.finishedAt = Date.now();
      m.journal.save();
      return {
        phase: name,
        action: 'down' as const,
        record: interrupted,
        notes: [`interrupted ${name} abandoned (it had switched no config)`, ...nodeNotes],
      };
    }
    return await phases[name].down(m);
  } finally {
    m.lock.release();
    await m.close();
  }
}

/** Where the migration stands, for `migrate status`. */
export function status(m: Migration) {
  const j = m.journal;
  const current = j.current();
  const interrupted = j.interrupted();
  const next = interrupted ? interrupted.phase : PHASES[current === undefined ? 0 : PHASES.indexOf(current) + 1];
  return {
    journal: j.store.location,
    config: m.configPath,
    started: j.exists,
    current: current ?? null,
    interrupted: interrupted ? { phase: interrupted.phase, cursor: interrupted.cursor ?? null } : null,
    next: next ?? null,
    defaultProfile: m.defaultProfile(),
    source: j.state.source ?? null,
    target: j.state.target ?? null,
    distributed: j.state.distributed ?? null,
    lock: m.lock.read() ?? null,
    phases: j.state.phases,
  };
}
