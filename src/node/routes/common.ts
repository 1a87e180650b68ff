/**
 * What the node's route files share: the route shape (fastify options plus the OpenAPI summary
 * and statuses), the JSON schemas, the node context the routes run against, query-string helpers.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { InvalidInputError } from '../../backends/contract.js';
import type { ProcessRegistry } from '../../registry/service.js';
import type { RouteDoc } from '../openapi.js';
import type { RestoreStages } from '../restore.js';

/** One route: fastify options plus its OpenAPI summary and statuses (src/node/openapi.ts). */
export interface Route extends RouteDoc {
  method: 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'POST';
  url: string;
  summary: string;
  schema?: RouteOptions['schema'];
  bodyLimit?: number;
  onRequest?: RouteOptions['onRequest'];
  handler: (req: FastifyRequest, reply: FastifyReply) => unknown;
}

export interface NodeLimits {
  bulkBodyBytes: number;
  maxBulk: number;
  maxWatchers: number;
  watchBuffer: number;
  /** Interval of the watch stream's heartbeat lines. */
  heartbeatMs: number;
}

/** The running node as its routes see it (src/node/server.ts RegistryNode). */
export interface NodeContext {
  readonly registry: ProcessRegistry;
  readonly limits: NodeLimits;
  readonly restores: RestoreStages;
  /** Open change-feed streams (not counted in flight). */
  readonly streams: Set<ServerResponse>;
  /** Requests in flight, bulk requests taken, watches being opened. */
  readonly counters: { inFlight: number; bulkActive: number; watchesOpening: number };
  nodeInfo(): Promise<Record<string, unknown>>;
  health(): Promise<Record<string, unknown> & { status: string }>;
  openapi(): Record<string, unknown>;
  metrics(): { contentType: string; metrics(): Promise<string> };
}

export type NsKey = { ns: string; key: string };
export type Q = Record<string, string | string[] | undefined>;

export const str = { type: 'string' } as const;
export const int = { type: 'integer' } as const;
export const anyObject = { type: 'object', additionalProperties: true } as const;
export const entrySchema = {
  type: 'object',
  required: ['namespace', 'key', 'pid', 'node', 'meta', 'registeredAt', 'updatedAt'],
  properties: {
    namespace: str,
    key: str,
    pid: int,
    node: str,
    meta: { type: 'object', additionalProperties: true },
    registeredAt: { type: 'number' },
    updatedAt: { type: 'number' },
    pidStart: { type: ['number', 'null'] },
  },
} as const;
export const nsKeyParams = { type: 'object', required: ['ns', 'key'], properties: { ns: str, key: str } } as const;
export const nsParams = { type: 'object', required: ['ns'], properties: { ns: str } } as const;
export const registerBody = {
  type: 'object',
  required: ['pid'],
  additionalProperties: false,
  properties: {
    pid: { type: 'integer', minimum: 1, maximum: 2147483647 },
    node: str,
    meta: { type: 'object' },
    pidStart: { type: ['integer', 'null'] },
    registeredAt: { type: 'integer', minimum: 0 },
    updatedAt: { type: 'integer', minimum: 0 },
    replace: {
      description: 'compare-and-swap: replace the current holder only if it matches (pid, node, registeredAt)',
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { pid: int, node: str, registeredAt: int },
    },
  },
} as const;
export const bulkItem = {
  type: 'object',
  required: ['key', 'pid'],
  properties: {
    namespace: str,
    key: str,
    pid: int,
    node: str,
    meta: { type: 'object' },
    pidStart: { type: ['integer', 'null'] },
    registeredAt: int,
    updatedAt: int,
  },
} as const;

/** 503 + Retry-After: a limit of the node is full (docs/node.md "Limits"); the client retries. */
export function busy(reply: FastifyReply, message: string): void {
  reply.code(503).header('retry-after', '1').send({ code: 'BUSY', message });
}

export function optStr(v: string | string[] | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new InvalidInputError(`query parameter ${name} given more than once`);
  return v;
}

export function optInt(v: string | string[] | undefined, name: string): number | undefined {
  const s = optStr(v, name);
  if (s === undefined || s === '') return undefined;
  if (!/^-?\d{1,15}$/.test(s)) throw new InvalidInputError(`invalid ${name} ${JSON.stringify(s)}: use a whole number`);
  return Number(s);
}
