/** /v1/registrations: register (with compare-and-swap), look up, unregister, metadata, signal, list, clear. */
import type { FastifyRequest } from 'fastify';
import { type Meta, NotFoundError } from '../../backends/contract.js';
import { parseSignal } from '../../registry/liveness.js';
import { MAX_META_BYTES, parseWhere, validateNamespace } from '../../registry/validate.js';
import { errorSchema } from '../openapi.js';
import { API } from '../wire.js';
import {
  entrySchema,
  int,
  type NodeContext,
  nsKeyParams,
  type NsKey,
  nsParams,
  optInt,
  optStr,
  type Q,
  registerBody,
  type Route,
  str,
} from './common.js';

const params = (req: FastifyRequest) => req.params as NsKey;

export function registrationRoutes(node: NodeContext): Route[] {
  const reg = node.registry;
  const entry200 = { 200: entrySchema, '4xx': errorSchema };
  return [
    {
      method: 'PUT',
      url: `${API}/registrations/:ns/:key`,
      summary: 'Register a key for a pid → 201 entry, 409 {code, holder} when a live process holds it',
      errors: [409, 422],
      schema: { params: nsKeyParams, body: registerBody, response: { 201: entrySchema, '4xx': errorSchema } },
      handler: async (req, reply) => {
        const { ns, key } = params(req);
        const b = req.body as {
          pid: number;
          node?: string;
          meta?: Meta;
          pidStart?: number | null;
          registeredAt?: number;
          updatedAt?: number;
          replace?: { pid?: number; node?: string; registeredAt?: number };
        };
        const entry = reg.makeEntry(key, b.pid, b.meta ?? {}, {
          namespace: ns,
          node: b.node,
          pidStart: b.pidStart ?? undefined,
          registeredAt: b.registeredAt,
          updatedAt: b.updatedAt,
        });
        const out = await reg.registerEntry(entry, b.replace ? { replace: b.replace } : {});
        reply.code(201);
        return out;
      },
    },
    {
      method: 'GET',
      url: `${API}/registrations/:ns/:key`,
      summary: 'Look up a key → 200 live entry, 404',
      errors: [404],
      schema: { params: nsKeyParams, response: entry200 },
      // A synchronous store without the lookup cache answers without a promise (the hot path).
      handler:
        reg.capabilities.synchronous && !reg.cacheLookups
          ? (req, reply) => {
              const { ns, key } = params(req);
              const e = reg.lookupSync(key, { namespace: ns });
              if (!e) throw new NotFoundError(ns, key);
              reply.send(e);
            }
          : async (req) => {
              const { ns, key } = params(req);
              const e = await reg.lookup(key, { namespace: ns });
              if (!e) throw new NotFoundError(ns, key);
              return e;
            },
    },
    {
      method: 'DELETE',
      url: `${API}/registrations/:ns/:key`,
      summary: 'Unregister (idempotent) → 200 {removed}; ?pid=&node=&registeredAt= remove only a matching holder',
      schema: {
        params: nsKeyParams,
        querystring: {
          type: 'object',
          properties: {
            pid: { type: 'string', description: 'remove only if the holder has this pid' },
            node: { type: 'string', description: 'remove only if the holder is on this node' },
            registeredAt: { type: 'string', description: 'remove only if the holder registered at this ms' },
          },
        },
        response: { 200: { type: 'object', properties: { removed: { type: 'boolean' } } } },
      },
      handler: async (req) => {
        const { ns, key } = params(req);
        const q = req.query as Q;
        const pid = optInt(q.pid, 'pid');
        const registeredAt = optInt(q.registeredAt, 'registeredAt');
        const node = optStr(q.node, 'node');
        return { removed: await reg.unregister(key, { namespace: ns, pid, node, registeredAt }) };
      },
    },
    ...(['PUT', 'PATCH'] as const).map((method): Route => ({
      method,
      url: `${API}/registrations/:ns/:key/meta`,
      summary:
        method === 'PUT'
          ? 'Replace the metadata → 200 entry, 404'
          : 'JSON-merge-patch the metadata (RFC 7386) → 200 entry, 404',
      errors: [404],
      schema: { params: nsKeyParams, body: { type: 'object' }, response: entry200 },
      bodyLimit: MAX_META_BYTES * 2,
      handler: async (req) => {
        const { ns, key } = params(req);
        return reg.updateMetadata(key, req.body as Meta, { namespace: ns, merge: method === 'PATCH' });
      },
    })),
    {
      method: 'POST',
      url: `${API}/registrations/:ns/:key/signal`,
      summary:
        "Signal the live process holding a key, checked on the node (pid + start time) right before the kill → 200 {namespace, key, pid, node, signal}; 404; 400 {holder} when the entry is not of the node's node name",
      errors: [404],
      schema: {
        params: nsKeyParams,
        body: {
          type: 'object',
          required: ['signal'],
          additionalProperties: false,
          properties: { signal: { anyOf: [str, int] } },
        },
      },
      handler: async (req) => {
        const { ns, key } = params(req);
        const sig = parseSignal(String((req.body as { signal: string | number }).signal));
        return reg.signal(key, sig, { namespace: ns });
      },
    },
    {
      method: 'GET',
      url: `${API}/registrations/:ns`,
      summary: 'List live entries ordered by key → {items, next}; ?where=field=value (repeatable) &after=KEY &limit=N',
      schema: {
        params: nsParams,
        querystring: {
          type: 'object',
          properties: { where: { anyOf: [str, { type: 'array', items: str }] }, after: str, limit: str },
        },
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: entrySchema }, next: str } },
          '4xx': errorSchema,
        },
      },
      handler: async (req) => {
        const { ns } = req.params as { ns: string };
        const q = req.query as Q;
        const where = q.where === undefined ? undefined : parseWhere(Array.isArray(q.where) ? q.where : [q.where]);
        return reg.list({ namespace: ns, after: optStr(q.after, 'after'), limit: optInt(q.limit, 'limit'), where });
      },
    },
    {
      method: 'DELETE',
      url: `${API}/registrations/:ns`,
      summary: 'Remove every entry of a namespace (restore --mode replace) → {removed}',
      schema: { params: nsParams },
      handler: async (req) => {
        const { ns } = req.params as { ns: string };
        return { removed: await reg.clearNamespace(validateNamespace(ns)) };
      },
    },
  ];
}
