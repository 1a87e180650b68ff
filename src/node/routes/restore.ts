/** /v1/restore: staged restores (src/node/restore.ts) — upload in chunks, then one all-or-nothing commit. */
import type { FastifyRequest } from 'fastify';
import { API } from '../wire.js';
import { type NodeContext, type Route, str } from './common.js';

export function restoreRoutes(node: NodeContext): Route[] {
  const stages = node.restores;
  const idParams = { type: 'object', required: ['id'], properties: { id: str } } as const;
  const id = (req: FastifyRequest) => (req.params as { id: string }).id;
  return [
    {
      method: 'POST',
      url: `${API}/restore`,
      summary:
        'Open a staged restore → 201 {id, lastCommitted, lastDiscarded}; upload its entries, then commit (all or nothing)',
      errors: [409],
      schema: {
        response: { 201: { type: 'object', required: ['id'], additionalProperties: true, properties: { id: str } } },
        body: {
          type: 'object',
          required: ['mode', 'count', 'digest'],
          additionalProperties: false,
          properties: {
            mode: { enum: ['merge', 'replace'] },
            count: { type: 'integer', minimum: 0 },
            digest: str,
            id: str,
            // `registry import --atomic`: merge by register's rule, checked inside the commit.
            guard: { enum: ['register'] },
          },
        },
      },
      handler: async (req, reply) => {
        reply.code(201);
        return stages.begin(
          req.body as { mode: 'merge' | 'replace'; count: number; digest: string; id?: string; guard?: 'register' },
        );
      },
    },
    {
      method: 'POST',
      url: `${API}/restore/:id/entries`,
      summary: 'Stage a chunk of dump entries → {staged}; offset = entries staged before this chunk',
      errors: [404, 409],
      schema: {
        params: idParams,
        body: {
          type: 'object',
          required: ['offset', 'entries'],
          additionalProperties: false,
          properties: {
            offset: { type: 'integer', minimum: 0 },
            entries: { type: 'array', items: { type: 'object' } },
          },
        },
      },
      bodyLimit: node.limits.bulkBodyBytes,
      handler: async (req) => {
        const b = req.body as { offset: number; entries: unknown[] };
        return stages.append(id(req), b.offset, b.entries);
      },
    },
    {
      method: 'POST',
      url: `${API}/restore/:id/commit`,
      summary:
        'Check the staged dump (count, digest) and apply it all or nothing → {mode, restored, cleared, digest, namespaces}',
      errors: [404, 409],
      schema: { params: idParams },
      handler: async (req) => stages.commit(id(req)),
    },
    {
      method: 'DELETE',
      url: `${API}/restore/:id`,
      summary: 'Discard a staged restore → {discarded}',
      schema: { params: idParams },
      handler: async (req) => stages.abort(id(req)),
    },
  ];
}
