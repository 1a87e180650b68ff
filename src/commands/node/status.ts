import { InvalidInputError } from '../../backends/contract.js';
import { RegistryCommand } from '../../cli/base.js';
import { age, fieldTable, table } from '../../cli/output.js';

export default class NodeStatus extends RegistryCommand<typeof NodeStatus> {
  static override summary = 'Show a running registry node: uptime, backend, in-flight requests, counts, latencies.';
  static override description =
    'Asks the node named by --backend http://HOST:PORT (or the profile) for /v1/stats and /v1/health. Exit 6 when the node cannot be reached, 7 when it refuses the token (REGISTRY_TOKEN).';
  static override examples = [
    '<%= config.bin %> node status --backend http://127.0.0.1:7070',
    'REGISTRY_TOKEN=… <%= config.bin %> node status -b https://registry.internal:7070 --json',
  ];

  async run(): Promise<Record<string, unknown>> {
    const reg = await this.registry();
    const node = reg.node();
    if (!node) {
      throw new InvalidInputError(
        `node status needs a node: pass --backend http://HOST:PORT (the backend here is ${reg.backend.url})`,
      );
    }
    const { stats, health } = await node.nodeStatus();
    const namespaces: Record<string, number> = {};
    for (const ns of await reg.namespaces()) namespaces[ns] = await reg.count({ namespace: ns });
    const out = { url: reg.backend.url, ...stats, health, namespaces };
    if (!this.jsonEnabled()) {
      const c = await this.colors();
      const s = stats as {
        node: string;
        backend: string;
        uptimeMs: number;
        inFlight: number;
        watchers: number;
        revision: number | null;
        startedAt: number;
        pid: number;
        operations: Record<string, { count: number; errors: number; latencyMs: { p50: number; p99: number } }>;
      };
      const paint = health.status === 'healthy' ? c.ok : health.status === 'degraded' ? c.warn : c.bad;
      this.log(
        fieldTable(
          [
            ['node', `${reg.backend.url} (node name ${s.node}, pid ${s.pid})`],
            ['backend', s.backend],
            ['status', paint(health.status) + (health.reasons?.length ? ` — ${health.reasons.join('; ')}` : '')],
            ['uptime', age(Date.now() - s.uptimeMs)],
            ['in-flight requests', s.inFlight],
            ['watch streams', s.watchers],
            ['feed revision', s.revision ?? '-'],
            ['registrations', `${health.registrations} (${health.alive} alive, ${health.dead} dead)`],
            ...Object.entries(namespaces).map(([ns, n]): [string, number] => [`  ${ns}`, n]),
          ],
          this.view(),
        ),
      );
      const ops = Object.entries(s.operations ?? {});
      if (ops.length) {
        this.log(
          table(
            ['operation', 'count', 'errors', 'p50 ms', 'p99 ms'],
            ops.map(([k, o]) => [k, o.count, o.errors, o.latencyMs.p50.toFixed(3), o.latencyMs.p99.toFixed(3)]),
            this.view(),
          ),
        );
      }
    }
    return out;
  }
}
