/** Store-wide routes: digests, namespaces, count, sweep, and moving the node to another backend. */
import { InvalidInputError } from '../../backends/contract.js';
import { validateNamespace } from '../../registry/validate.js';
import { SwitchableBackend } from '../switch.js';
import { API } from '../wire.js';
import { anyObject, type NodeContext, nsParams, optInt, optStr, type Q, type Route, str } from './common.js';

export function adminRoutes(node: NodeContext): Route[] {
  const reg = node.registry;
  return [
    {
      method: 'GET',
      url: `${API}/digest/:ns`,
      summary:
        'Per-bucket digests of a namespace computed on the node → {buckets, digests, counts}; ?buckets=N (default 256)',
      schema: { params: nsParams, querystring: { type: 'object', properties: { buckets: str } } },
      handler: async (req) => {
        const { ns } = req.params as { ns: string };
        const buckets = optInt((req.query as Q).buckets, 'buckets') ?? 256;
        if (buckets < 1 || buckets > 65536) throw new InvalidInputError(`invalid buckets ${buckets}: use 1..65536`);
        return reg.digest(validateNamespace(ns), buckets);
      },
    },
    {
      method: 'GET',
      url: `${API}/namespaces`,
      summary: 'Namespaces holding entries → {namespaces}',
      handler: async () => ({ namespaces: await reg.namespaces() }),
    },
    {
      method: 'GET',
      url: `${API}/count`,
      summary: 'Live registrations in ?ns= (all namespaces when absent) → {count}',
      schema: { querystring: { type: 'object', properties: { ns: str } } },
      handler: async (req) => {
        const ns = optStr((req.query as Q).ns, 'ns');
        if (ns !== undefined) return { count: await reg.count({ namespace: ns }) };
        let count = 0;
        for (const n of await reg.namespaces()) count += await reg.count({ namespace: n });
        return { count };
      },
    },
    {
      method: 'POST',
      url: `${API}/cleanup`,
      summary: "Sweep dead processes of the node's own node name now → {checked, removed, at, durationMs, node}",
      handler: async () => ({ ...(await reg.cleanup()), node: reg.nodeName }),
    },
    {
      method: 'POST',
      url: `${API}/admin/switch`,
      summary:
        'Move the running node to another backend: dual write, backfill, pause, repair + verify, flip → the switch report; 409 while one runs',
      errors: [409],
      schema: {
        body: {
          type: 'object',
          required: ['backend'],
          additionalProperties: false,
          properties: { backend: str, backendOpts: anyObject },
        },
      },
      handler: async (req) => {
        const b = req.body as { backend: string; backendOpts?: Record<string, unknown> };
        // The switch internals (src/node/switch.ts) are the one part of the node that holds the store itself.
        const sw = reg.backend;
        if (!(sw instanceof SwitchableBackend)) throw new InvalidInputError('this node cannot switch backends');
        req.log.info({ from: sw.url, to: b.backend }, 'switching backend');
        const report = await sw.switchTo(b.backend, b.backendOpts ?? {});
        req.log.info(report, 'switched backend');
        return report;
      },
    },
  ];
}
