/**
 * The backend contract's typed errors (split from contract.ts, which re-exports them): every error
 * has a stable `code`, a message that says what to do, and `cause`; the CLI maps codes to exit
 * codes (design §4) through `exitCode`.
 */
import type { Registration } from './contract.js';

// ---------------------------------------------------------------------------------------------
// Typed errors. Every error has a stable `code`, a message that says what to do, and `cause`.
// The CLI maps codes to exit codes (design §4) through `exitCode`.
// ---------------------------------------------------------------------------------------------

export type ErrorCode =
  | 'INVALID_INPUT'
  | 'NOT_FOUND'
  | 'ALREADY_REGISTERED'
  | 'DEAD_PROCESS'
  | 'UNREACHABLE'
  | 'UNAUTHORIZED'
  | 'CLOSED'
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'DIFFERENT'
  | 'UNHEALTHY'
  | 'COMPACTED'
  | 'INTERNAL';

/** Exit codes of design §4, by error code. */
export const exitCodes: Record<ErrorCode, number> = {
  INVALID_INPUT: 2,
  DEAD_PROCESS: 2,
  CLOSED: 1,
  NOT_FOUND: 3,
  TIMEOUT: 3,
  ALREADY_REGISTERED: 4,
  CONFLICT: 4,
  DIFFERENT: 5,
  UNHEALTHY: 5,
  UNREACHABLE: 6,
  UNAUTHORIZED: 7,
  // A watch resumed from history no longer kept: list again (exit 4, as a conflict with the store).
  COMPACTED: 4,
  INTERNAL: 1,
};

export class RegistryError extends Error {
  readonly code: ErrorCode;
  /** True when retrying the same call may succeed (network blips, leader elections). */
  readonly recoverable: boolean;
  /** Extra fields for JSON output (e.g. the holder of a key). */
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; recoverable?: boolean; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.recoverable = opts.recoverable ?? false;
    this.details = opts.details;
  }

  get exitCode(): number {
    return exitCodes[this.code];
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.details ?? {}) };
  }
}

/** Bad namespace, key, pid, metadata, URL, file: exit 2. */
export class InvalidInputError extends RegistryError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('INVALID_INPUT', message, opts);
  }
}

export class NotFoundError extends RegistryError {
  constructor(namespace: string, key: string) {
    super('NOT_FOUND', `no live registration for "${key}" in namespace "${namespace}"`, {
      details: { namespace, key },
    });
  }
}

/** Another live process holds the key: exit 4, with the holder. */
export class AlreadyRegisteredError extends RegistryError {
  readonly holder: Registration;
  constructor(holder: Registration) {
    super(
      'ALREADY_REGISTERED',
      `"${holder.key}" in namespace "${holder.namespace}" is held by pid ${holder.pid} on ${holder.node}: unregister it first or pick another name`,
      { details: { holder } },
    );
    this.holder = holder;
  }
}

/** Registering a local pid that does not exist (or was reused): exit 2. */
export class DeadProcessError extends RegistryError {
  constructor(pid: number, node: string) {
    super('DEAD_PROCESS', `pid ${pid} is not a running process on ${node}: register a live pid`, {
      details: { pid, node },
    });
  }
}

/** The store cannot be reached or opened: exit 6. */
export class UnreachableError extends RegistryError {
  constructor(
    message: string,
    opts: { cause?: unknown; recoverable?: boolean; details?: Record<string, unknown> } = {},
  ) {
    super('UNREACHABLE', message, { recoverable: true, ...opts });
  }
}

/**
 * A change feed asked to resume from a revision it no longer keeps (compacted): list again and
 * watch from the current revision. `details.compacted` is true. Exit 4.
 */
export class CompactedError extends RegistryError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('COMPACTED', message, { ...opts, details: { ...opts.details, compacted: true } });
  }
}

/** A read found no store at `path` (read-only commands never create one): exit 6. */
export class NoRegistryError extends UnreachableError {
  constructor(path: string, opts: { cause?: unknown } = {}) {
    super(
      `no registry at ${path}: check the path (--backend, the profile or the URL given), or create it by registering a name (\`registry register NAME --pid PID\`)`,
      { ...opts, recoverable: false, details: { path } },
    );
  }
}

/**
 * A write whose outcome cannot be known: it was sent, its answer was lost (a timeout, a member or
 * the leader lost mid-call) and whether the store applied it could not be established. Exit 6 like
 * any unreachable store; `details.outcome === 'unknown'` tells it apart from a write that was
 * certainly not applied. The write was applied whole or not at all: look the key up to see which.
 */
export class OutcomeUnknownError extends UnreachableError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, { ...opts, details: { ...(opts.details ?? {}), outcome: 'unknown' } });
  }
}

/** Missing or wrong credentials: exit 7. */
export class UnauthorizedError extends RegistryError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('UNAUTHORIZED', message, opts);
  }
}

/** Use after close. */
export class ClosedError extends RegistryError {
  constructor(what: string) {
    super('CLOSED', `${what} is closed: open a new registry with ProcessRegistry.open()`);
  }
}

/** A lock or state conflict that is not a registration (migration lock held): exit 4. */
export class ConflictError extends RegistryError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('CONFLICT', message, opts);
  }
}

export class TimeoutError extends RegistryError {
  constructor(message: string, opts: { details?: Record<string, unknown> } = {}) {
    super('TIMEOUT', message, opts);
  }
}

/** Wrap an unknown thrown value as a RegistryError (internal error unless it already is one). */
export function asRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new RegistryError('INTERNAL', `internal error: ${e.message}`, { cause: e });
}
