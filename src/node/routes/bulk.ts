/** POST /v1/bulk: register many, in input order, atomic or not; compact results on request. */
import type { BulkResult, Registration } from '../../backends/contract.js';
import { API, toWire } from '../wire.js';
import { busy, type NodeContext, type Q, type Route } from './common.js';

export function bulkRoutes(node: NodeContext): Route[] {
  const reg = node.registry;
  return [
    {
      method: 'POST',
      url: `${API}/bulk`,
      summary:
        'Register many → {results} in input order: {ok:true, entry} | {ok:false, holder} | {ok:false, error}; atomic = all or nothing',
      schema: {
        body: {
          type: 'object',
          required: ['entries'],
          additionalProperties: false,
          properties: { entries: { type: 'array', items: { type: 'object' } }, atomic: { type: 'boolean' } },
        },
        querystring: { type: 'object', properties: { results: { enum: ['full', 'compact'] } } },
      },
      bodyLimit: node.limits.bulkBodyBytes,
      // Checked before the body is read: each body in flight costs ~15× its size once parsed.
      onRequest: (_req, reply, done) => {
        if (node.counters.bulkActive >= node.limits.maxBulk)
          return busy(
            reply,
            `the node is already taking ${node.limits.maxBulk} bulk requests (registry serve --max-bulk): retry shortly`,
          );
        node.counters.bulkActive++;
        reply.raw.once('close', () => node.counters.bulkActive--);
        done();
      },
      handler: async (req, reply) => {
        const b = req.body as { entries: Array<Record<string, unknown>>; atomic?: boolean };
        const results = await reg.bulkRegister(b.entries as never, { atomic: b.atomic });
        reply.header('content-type', 'application/json; charset=utf-8');
        return bulkJson(results, (req.query as Q).results === 'compact' ? b.entries : undefined);
      },
    },
  ];
}

/**
 * Bulk results as JSON text, in input order; errors as wire errors. With `sent` (results=compact)
 * a success carries only what the node added to the entry the client sent (node, pidStart,
 * timestamps when absent), so large batches do not echo every entry back.
 */
function bulkJson(results: BulkResult[], sent?: Array<Record<string, unknown>>): string {
  const parts = results.map((r, i) => {
    const s = sent?.[i];
    if (r.ok) return s ? compactOk(r.entry, s) : `{"ok":true,"entry":${JSON.stringify(r.entry)}}`;
    if ('holder' in r) return JSON.stringify({ ok: false, holder: r.holder });
    return JSON.stringify({ ok: false, error: toWire(r.error) });
  });
  return `{"results":[${parts.join(',')}]}`;
}

function compactOk(e: Registration, sent: Record<string, unknown>): string {
  if (
    sent.namespace === e.namespace &&
    sent.node === e.node &&
    sent.registeredAt === e.registeredAt &&
    sent.updatedAt === e.updatedAt &&
    (sent.pidStart ?? null) === (e.pidStart ?? null)
  ) {
    return '{"ok":true}';
  }
  let out = '{"ok":true';
  if (sent.namespace !== e.namespace) out += `,"namespace":${JSON.stringify(e.namespace)}`;
  if (sent.node !== e.node) out += `,"node":${JSON.stringify(e.node)}`;
  if (sent.registeredAt !== e.registeredAt) out += `,"registeredAt":${e.registeredAt}`;
  if (sent.updatedAt !== e.updatedAt) out += `,"updatedAt":${e.updatedAt}`;
  if ((sent.pidStart ?? null) !== (e.pidStart ?? null)) out += `,"pidStart":${JSON.stringify(e.pidStart ?? null)}`;
  return `${out}}`;
}
