/** Fault handling of the etcd backend: per-member breaker, watch backoff, cluster probe, error classes. */
import { ClosedError, InvalidInputError, type RegistryError, UnauthorizedError, asRegistryError } from '../contract.js';

/**
 * Per-member circuit breaker handed to the etcd3 pool: after 3 consecutive transient failures a
 * member is skipped for 1 s (the pool then tries the next member), then tried again.
 */
export class HostBreaker {
  private failures = 0;
  private openUntil = 0;
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    if (Date.now() < this.openUntil) {
      const e = new Error('etcd member skipped after repeated failures (circuit open)');
      e.name = 'BrokenCircuitError';
      throw e;
    }
    try {
      const r = await fn();
      this.failures = 0;
      return r;
    } catch (err) {
      if (isTransient(err) && ++this.failures >= 3) {
        this.openUntil = Date.now() + 1000;
        this.failures = 0;
      }
      throw err;
    }
  }
}

/** Exponential reconnect delay for watch streams, capped (etcd3's IBackoff shape). */
export class CappedBackoff {
  constructor(
    readonly duration: number,
    private readonly max: number,
  ) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.max), this.max);
  }
}

export interface MemberStatus {
  endpoint: string;
  reachable: boolean;
  id?: string;
  leader?: string;
  raftTerm?: number;
  raftIndex?: number;
  dbSize?: number;
  errors?: string[];
}

export interface Probe {
  members: MemberStatus[];
  reachable: number;
  leader: string | null;
  /** The client endpoint of the leader, when a reachable member is it. */
  leaderEndpoint: string | null;
  raftTerm: number;
  raftIndex: number;
  revision: number;
  dbSize: number;
  quorumLost: boolean;
}

export async function probeCluster(endpoints: string[]): Promise<Probe> {
  const members = await Promise.all(
    endpoints.map(async (endpoint): Promise<MemberStatus> => {
      try {
        const res = await fetch(`http://${endpoint}/v3/maintenance/status`, {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(700),
        });
        if (!res.ok) return { endpoint, reachable: false };
        const s = (await res.json()) as {
          header?: { member_id?: string; revision?: string };
          leader?: string;
          raftTerm?: string;
          raftIndex?: string;
          dbSize?: string;
          errors?: string[];
        };
        return {
          endpoint,
          reachable: true,
          id: s.header?.member_id,
          leader: s.leader && s.leader !== '0' ? s.leader : undefined,
          raftTerm: Number(s.raftTerm ?? 0),
          raftIndex: Number(s.raftIndex ?? 0),
          dbSize: Number(s.dbSize ?? 0),
          errors: s.errors ?? [],
          revision: Number(s.header?.revision ?? 0),
        } as MemberStatus;
      } catch {
        return { endpoint, reachable: false };
      }
    }),
  );
  const up = members.filter((m) => m.reachable);
  const majority = Math.floor(endpoints.length / 2) + 1;
  const withLeader = up.filter((m) => m.leader);
  const lead = withLeader[0];
  return {
    members,
    reachable: up.length,
    leader: lead?.leader ?? null,
    leaderEndpoint: up.find((m) => m.id && m.id === lead?.leader)?.endpoint ?? null,
    raftTerm: Math.max(0, ...up.map((m) => m.raftTerm ?? 0)),
    raftIndex: Math.max(0, ...up.map((m) => m.raftIndex ?? 0)),
    revision: Math.max(0, ...up.map((m) => (m as { revision?: number }).revision ?? 0)),
    dbSize: Math.max(0, ...up.map((m) => m.dbSize ?? 0)),
    // No leader with a majority up is an election in progress (retried), not a lost quorum.
    quorumLost: up.length < majority,
  };
}

export function quorumMessage(p: Probe, endpoints: string[]): string {
  const majority = Math.floor(endpoints.length / 2) + 1;
  const down = p.members.filter((m) => !m.reachable).map((m) => m.endpoint);
  return `etcd has lost quorum: ${p.reachable} of ${endpoints.length} members reachable (a majority of ${majority} is needed${down.length ? `; down: ${down.join(', ')}` : ''}${p.leader ? '' : '; no leader'}): writes and linearizable reads are refused until enough members are back`;
}

export const TRANSIENT_NAMES = new Set([
  'GRPCUnavailableError',
  'GRPCDeadlineExceededError',
  'GRPCInternalError',
  'GRPCCancelledError',
  'GRPCConnectFailedError',
  'BrokenCircuitError',
  'TaskCancelledError',
  'GRPCResourceExhastedError',
]);

export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (TRANSIENT_NAMES.has(err.name) || TRANSIENT_NAMES.has(err.constructor?.name)) return true;
  return /no leader|timed out|leader changed|unavailable|ECONNREFUSED|connect|too many requests|not capable|deadline|broken|circuit/i.test(
    err.message,
  );
}

/**
 * Blind writes retried by `rpc` (their failure may be ambiguous). The conditional writes (register,
 * unregister, meta set, bulk) never get there ambiguous: `attempt` settles their outcome.
 */
export const WRITES = new Set(['removeProcess', 'markCleanup']);

/** The call certainly never reached a member that could apply it (safe to send again). */
export function isUnsent(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'BrokenCircuitError' || err.name === 'GRPCConnectFailedError') return true;
  return /no leader|ECONNREFUSED|circuit|failed to connect|No connection established/i.test(err.message);
}

/** Thrown through `rpc`: an ambiguous attempt turned out applied; `value` is the call's answer. */
export class Applied {
  constructor(readonly value: unknown) {}
}

/** Thrown through `rpc`: an attempt certainly not applied (its fence moved): decide again. */
export class Redo {}

/** The request may have been proposed before it failed (a timeout, not a refusal). */
export function isAmbiguous(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'BrokenCircuitError' || /no leader|ECONNREFUSED|connect|circuit/i.test(err.message)) return false;
  if (err.name === 'GRPCUnavailableError' && !/timed out|leader changed/i.test(err.message)) return false;
  return true;
}

export function isLeaseGone(err: unknown): boolean {
  return err instanceof Error && /lease not found/i.test(err.message);
}

export function permanentError(err: unknown, what: string): RegistryError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/permission denied|authentication|invalid auth|user name/i.test(msg))
    return new UnauthorizedError(`${what} refused by etcd: ${msg}: check the etcd user and its role`, { cause: err });
  if (/too large|too many operations|duplicate key/i.test(msg))
    return new InvalidInputError(`${what} refused by etcd: ${msg}`, { cause: err });
  if (err instanceof Error && err.name === 'ClientClosedError') return new ClosedError('the etcd backend');
  return asRegistryError(err);
}

/** `p`, or a transient timeout error after `ms` (the watch stream waits for a connection forever). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: request timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
