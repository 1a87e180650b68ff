/** The node's own state: health, stats (with the lookup cache's hit rate), Prometheus metrics, the OpenAPI document. */
import { API } from '../wire.js';
import { anyObject, type NodeContext, type Route, str } from './common.js';

export function statusRoutes(node: NodeContext): Route[] {
  const reg = node.registry;
  return [
    {
      method: 'GET',
      url: `${API}/health`,
      summary: 'Backend health plus node fields → 200, or 503 when unhealthy',
      schema: { response: { 200: anyObject, 503: anyObject } },
      handler: async (_req, reply) => {
        const h = await node.health();
        reply.code(h.status === 'unhealthy' ? 503 : 200);
        return h;
      },
    },
    {
      method: 'GET',
      url: `${API}/stats`,
      summary:
        'Node uptime, in-flight requests, watchers, revision, per-operation counts and latencies, lookup cache hit rate',
      handler: async () => {
        const [stats, info] = await Promise.all([reg.localStats(), node.nodeInfo()]);
        return { ...stats, ...info };
      },
    },
    {
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (text exposition format)',
      responses: {
        200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: str } } },
      },
      handler: async (_req, reply) => {
        const m = node.metrics();
        reply.header('content-type', m.contentType);
        return m.metrics();
      },
    },
    {
      method: 'GET',
      url: `${API}/openapi.json`,
      summary: 'This API as an OpenAPI 3.1 document',
      handler: async () => node.openapi(),
    },
  ];
}
