/**
 * The node's wire protocol, shared by the server (src/node/server.ts) and the remote backend
 * (src/backends/remote.ts): paths, HTTP status per error code, and errors to and from JSON, so
 * both sides agree by construction.
 */
import {
  AlreadyRegisteredError,
  CompactedError,
  DeadProcessError,
  type ErrorCode,
  exitCodes,
  InvalidInputError,
  NotFoundError,
  OutcomeUnknownError,
  type Registration,
  RegistryError,
  UnauthorizedError,
  UnreachableError,
} from '../backends/contract.js';

/** The API version prefix. */
export const API = '/v1';

/** `/v1/registrations/{ns}/{key}` with both parts URL-encoded (keys may hold '/', '%', spaces). */
export function registrationPath(namespace: string, key?: string, suffix = ''): string {
  const base = `${API}/registrations/${encodeURIComponent(namespace)}`;
  return key === undefined ? base : `${base}/${encodeURIComponent(key)}${suffix}`;
}

/** HTTP status for a RegistryError code (and the node's own codes). */
export function statusFor(code: string): number {
  switch (code) {
    case 'INVALID_INPUT':
      return 400;
    case 'DEAD_PROCESS':
      return 422;
    case 'UNAUTHORIZED':
      return 401;
    case 'NOT_FOUND':
    case 'NO_ROUTE':
      return 404;
    case 'ALREADY_REGISTERED':
    case 'CONFLICT':
    case 'DIFFERENT':
      return 409;
    case 'COMPACTED':
      return 410;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'UNREACHABLE':
      return 502;
    case 'CLOSED':
    case 'UNHEALTHY':
      return 503;
    case 'TIMEOUT':
    case 'OUTCOME_UNKNOWN':
      return 504;
    default:
      return 500;
  }
}

/** The JSON body of every error answer: `{code, message, ...details}`. */
export interface WireError {
  code: string;
  message: string;
  [detail: string]: unknown;
}

/**
 * A RegistryError as a wire body (internal errors say nothing about internals). A write whose
 * outcome the node could not establish (OutcomeUnknownError from its backend, e.g. etcd) has its
 * own code, `OUTCOME_UNKNOWN` (HTTP 504, `outcome: "unknown"`): the client must not take it for a
 * write that certainly failed.
 */
export function toWire(err: RegistryError): WireError {
  if (err.code === 'INTERNAL')
    return { code: 'INTERNAL', message: 'internal error on the registry node (see its log)' };
  const body = err.toJSON() as WireError;
  return err.details?.outcome === 'unknown' ? { ...body, code: 'OUTCOME_UNKNOWN' } : body;
}

/** A wire error (status + body) back into the typed error the contract promises. */
export function fromWire(status: number, body: unknown, where: string): RegistryError {
  const b = (body && typeof body === 'object' ? body : {}) as Partial<WireError>;
  const code = typeof b.code === 'string' ? b.code : '';
  const message = typeof b.message === 'string' ? b.message : `HTTP ${status}`;
  if (status === 401 || status === 403 || code === 'UNAUTHORIZED') {
    return new UnauthorizedError(
      `registry node ${where} refused the token (${message}): pass the right one in REGISTRY_TOKEN or backendOpts.token`,
    );
  }
  if (code === 'ALREADY_REGISTERED' && b.holder) return new AlreadyRegisteredError(b.holder as Registration);
  if (code === 'DEAD_PROCESS') return new DeadProcessError(Number(b.pid), String(b.node));
  if (code === 'NOT_FOUND' && typeof b.namespace === 'string' && typeof b.key === 'string')
    return new NotFoundError(b.namespace, b.key);
  if (code === 'OUTCOME_UNKNOWN') return new OutcomeUnknownError(`registry node ${where}: ${message}`);
  if (status === 400 || status === 413 || code === 'INVALID_INPUT') return new InvalidInputError(message);
  if (code === 'UNREACHABLE' || status === 502) return new UnreachableError(`registry node ${where}: ${message}`);
  // A limit of the node is full (503 + Retry-After): worth retrying, like an unreachable store.
  if (code === 'BUSY') return new UnreachableError(`registry node ${where} is busy: ${message}`);
  if (code === 'COMPACTED') return new CompactedError(`registry node ${where}: ${message}`);
  if (code in exitCodes) return new RegistryError(code as ErrorCode, message);
  return new RegistryError('INTERNAL', `registry node ${where} answered HTTP ${status}: ${message}`);
}
