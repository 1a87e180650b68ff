/**
 * The migration journal and its lock (design §5).
 *
 * The journal records each phase (status, stores, digests, counts, the backfill cursor) so
 * `migrate status` shows where a migration stands, `rollback` knows what to undo and a killed run
 * resumes. Storage is a small contract (`JournalStore`: load/save of one JSON document); the file
 * implementation replaces the file atomically (write a temporary file, fsync, rename), so a kill at
 * any instant leaves either the old or the new journal, never half of one.
 *
 * The lock is a file beside the journal created with O_EXCL, holding the owner's pid, host and
 * start time. A second run finds it and fails with ConflictError (exit 4) while the owner lives; a
 * lock whose owner is dead (a crash, a SIGKILL) is stale and taken over.
 */
import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import { ConflictError, InvalidInputError, UnreachableError } from '../backends/contract.js';
import { pidExists } from '../registry/liveness.js';
import { writeFileAtomic } from '../core/atomic-file.js';

export const JOURNAL_VERSION = 1;
export const PHASES = ['wrap', 'hybrid', 'cutover', 'optimize', 'distribute'] as const;
export type PhaseName = (typeof PHASES)[number];

export interface PhaseRecord {
  phase: PhaseName;
  status: 'running' | 'done' | 'rolled-back';
  startedAt: number;
  finishedAt?: number;
  /** Store URLs this phase read and wrote. */
  from?: string;
  to?: string;
  /** Entry counts (source, target, copied, anomalies...). */
  counts?: Record<string, number>;
  /** Digests proving the phase (per namespace, hex). */
  digests?: Record<string, string>;
  /** Backfill progress, for resumption. */
  cursor?: { namespace: string; after?: string; copied: number };
  /** The config `default` profile before this phase changed it (for rollback). */
  previousDefault?: string | null;
  /** Free-form findings (anomalies, shadow-read results). */
  details?: Record<string, unknown>;
}

export interface JournalState {
  version: number;
  /** The config file the migration steers. */
  config: string;
  createdAt: number;
  updatedAt: number;
  /** The legacy (or first) store. */
  source?: string;
  /** The clean local store (phase 2 onwards). */
  target?: string;
  /** The distributed store (phase 5). */
  distributed?: string;
  phases: PhaseRecord[];
}

/** Storage of one journal document. */
export interface JournalStore {
  readonly location: string;
  load(): JournalState | undefined;
  save(state: JournalState): void;
}

export class FileJournalStore implements JournalStore {
  constructor(readonly location: string) {}

  load(): JournalState | undefined {
    let text: string;
    try {
      text = readFileSync(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UnreachableError(`cannot read the migration journal ${this.location}: ${(e as Error).message}`, {
        cause: e,
        recoverable: false,
      });
    }
    let state: JournalState;
    try {
      state = JSON.parse(text) as JournalState;
    } catch (cause) {
      throw new InvalidInputError(
        `the migration journal ${this.location} is not valid JSON: restore it or pass another --journal`,
        { cause },
      );
    }
    if (!state || state.version !== JOURNAL_VERSION || !Array.isArray(state.phases)) {
      throw new InvalidInputError(
        `${this.location} is not a procreg migration journal (version ${JOURNAL_VERSION}): pass another --journal`,
      );
    }
    return state;
  }

  save(state: JournalState): void {
    writeFileAtomic(this.location, `${JSON.stringify(state, null, 2)}\n`);
  }
}

export interface LockInfo {
  pid: number;
  host: string;
  startedAt: number;
  command: string;
}

/** An exclusive lock file; `release` removes it only if it is still ours. */
export class MigrationLock {
  private held = false;
  constructor(readonly path: string) {}

  /** Take the lock; ConflictError while a live process holds it; a dead owner's lock is taken over. */
  acquire(command: string): { tookOver?: LockInfo } {
    const mine: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: Date.now(), command };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(this.path, 'wx', 0o644);
        writeSync(fd, JSON.stringify(mine));
        fsyncSync(fd);
        closeSync(fd);
        this.held = true;
        return {};
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new UnreachableError(`cannot create the migration lock ${this.path}: ${(e as Error).message}`, {
            cause: e,
            recoverable: false,
          });
        }
      }
      const owner = this.read();
      if (owner && owner.pid !== process.pid && owner.host === os.hostname() && pidExists(owner.pid)) {
        throw new ConflictError(
          `another migration is running (pid ${owner.pid}, \`${owner.command}\`, since ${new Date(owner.startedAt).toISOString()}): wait for it to finish`,
          { details: { lock: this.path, owner } },
        );
      }
      if (owner && owner.host !== os.hostname()) {
        throw new ConflictError(
          `the migration lock ${this.path} is held by pid ${owner.pid} on ${owner.host}: finish it there, or remove the file if that host is gone`,
          {
            details: { lock: this.path, owner },
          },
        );
      }
      // Stale (owner dead, or an unreadable half-written lock): take it over.
      try {
        unlinkSync(this.path);
      } catch {
        // another run removed it first: retry the create
      }
      if (owner) {
        const r = this.acquire(command);
        return { ...r, tookOver: owner };
      }
    }
    throw new ConflictError(`could not take the migration lock ${this.path}: another run keeps taking it`);
  }

  read(): LockInfo | undefined {
    try {
      const v = JSON.parse(readFileSync(this.path, 'utf8')) as LockInfo;
      return typeof v.pid === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    const owner = this.read();
    if (owner?.pid === process.pid) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }
}

/** A journal document with helpers for the phase records. */
export class Journal {
  state: JournalState;
  constructor(
    readonly store: JournalStore,
    config: string,
  ) {
    this.state = store.load() ?? {
      version: JOURNAL_VERSION,
      config,
      createdAt: Date.now(),
      updatedAt: Date.now(),
      phases: [],
    };
  }

  get exists(): boolean {
    return this.state.phases.length > 0;
  }

  /** The latest record of a phase (any status). */
  record(phase: PhaseName): PhaseRecord | undefined {
    const phases = this.state.phases;
    for (let i = phases.length - 1; i >= 0; i--) {
      const r = phases[i];
      if (r?.phase === phase) return r;
    }
    return undefined;
  }

  /** The furthest phase that is done (and not rolled back), or undefined. */
  current(): PhaseName | undefined {
    let cur: PhaseName | undefined;
    for (const p of PHASES) {
      if (this.record(p)?.status === 'done') cur = p;
      else break;
    }
    return cur;
  }

  /** A phase left running by a killed run. */
  interrupted(): PhaseRecord | undefined {
    return this.state.phases.find((p) => p.status === 'running');
  }

  begin(rec: Omit<PhaseRecord, 'status' | 'startedAt'>): PhaseRecord {
    const r: PhaseRecord = { ...rec, status: 'running', startedAt: Date.now() };
    this.state.phases.push(r);
    this.save();
    return r;
  }

  finish(r: PhaseRecord, fields: Partial<PhaseRecord> = {}): void {
    Object.assign(r, fields, { status: 'done', finishedAt: Date.now() });
    delete r.cursor;
    this.save();
  }

  save(): void {
    this.state.updatedAt = Date.now();
    this.store.save(this.state);
  }
}
