import { RegistryCommand } from '../cli/base.js';
import type { HealthReport, ServiceStats, SweepResult } from '../backends/contract.js';
import { fieldTable, table } from '../cli/output.js';
import { fieldRows, fmtBytes, fmtField, fmtInt, fmtMs, fmtWhen, paintStatus } from '../cli/health.js';

type Operations = NonNullable<ServiceStats['operations']>;

export interface StatsResult {
  backend: string;
  /** Whose counters these are: a node's (remote backend) or this process's. */
  countersFrom: 'node' | 'this process';
  status: HealthReport['status'];
  /** Stored registrations per namespace (dead ones not yet swept included). */
  namespaces: Record<string, number>;
  registrations: number;
  alive: number;
  dead: number;
  memory: { backendBytes: number; processRssBytes: number; processHeapUsedBytes: number };
  lastCleanup: number | null;
  uptimeMs: number | null;
  operations: Operations;
  sweeps: SweepResult[];
  optimization: unknown;
  /** The node's own fields (in-flight requests, watchers, …) for a remote backend. */
  node?: Record<string, unknown>;
}

export default class Stats extends RegistryCommand<typeof Stats> {
  static override readOnly = true;
  static override summary =
    'Registrations per namespace, alive/dead, memory, per-operation counts, errors and latency percentiles, sweeps.';
  static override description = `Latencies are HDR-histogram percentiles (p50/p90/p99/max, ms) over a sample of calls; counts and errors are exact.

A one-shot CLI process has no history of its own: against a node (--backend http://HOST:PORT) the counters are the node's (GET /v1/stats); against a local backend (sqlite, memory) you get the store's view plus this process's counters, which are only interesting in the REPL or a library. Run a node (\`registry serve\`) to keep counters over time.`;
  static override examples = [
    '<%= config.bin %> stats',
    '<%= config.bin %> stats --backend http://127.0.0.1:7070 --json',
    '<%= config.bin %> stats -b sqlite:./registry.db',
  ];

  async run(): Promise<StatsResult> {
    const reg = await this.registry();
    const health = await reg.healthCheck();
    const { countersFrom, counters, namespaces } = await reg.collectStats();
    const remote = countersFrom === 'node';
    const mem = process.memoryUsage();
    const { operations, sweeps, uptimeMs, optimization, startedAt: _s, ...nodeFields } = counters;
    const result: StatsResult = {
      backend: reg.url,
      countersFrom,
      status: health.status,
      namespaces,
      registrations: health.registrations,
      alive: health.alive,
      dead: health.dead,
      memory: { backendBytes: health.memoryBytes, processRssBytes: mem.rss, processHeapUsedBytes: mem.heapUsed },
      lastCleanup: health.lastCleanup,
      uptimeMs: typeof uptimeMs === 'number' ? uptimeMs : null,
      operations: operations ?? {},
      sweeps: sweeps ?? [],
      optimization: optimization ?? null,
      ...(remote ? { node: nodeFields } : {}),
    };
    if (!this.jsonEnabled()) await this.render(result, reg.stats.enabled || remote, reg.capabilities.remote);
    return result;
  }

  private async render(r: StatsResult, counting: boolean, remote: boolean): Promise<void> {
    const c = await this.colors();
    const view = this.view();
    const share = r.registrations > 0 ? ` (${((r.dead / r.registrations) * 100).toFixed(1)}%)` : '';
    this.log(
      fieldTable(
        [
          ['backend', r.backend],
          ['status', paintStatus(c, r.status)],
          ['registrations', `${fmtInt(r.registrations)} (${fmtInt(r.alive)} alive, ${fmtInt(r.dead)} dead${share})`],
          ['backend memory', fmtBytes(r.memory.backendBytes)],
          ['counters from', r.countersFrom],
          ...(r.uptimeMs !== null ? [['uptime', fmtMs(r.uptimeMs)] as [string, string]] : []),
          ...(r.countersFrom === 'this process'
            ? [
                [
                  'process memory',
                  `rss ${fmtBytes(r.memory.processRssBytes)}, heap ${fmtBytes(r.memory.processHeapUsedBytes)}`,
                ] as [string, string],
              ]
            : []),
          ['last cleanup', fmtWhen(r.lastCleanup)],
          ...nodeRows(r.node ?? {}, ['backend', 'uptime']),
        ],
        view,
      ),
    );
    const ns = Object.entries(r.namespaces);
    this.log(
      ns.length
        ? table(
            ['NAMESPACE', 'REGISTRATIONS'],
            ns.map(([k, n]) => [k, fmtInt(n)]),
            view,
          )
        : c.dim('no namespaces'),
    );
    const ops = Object.entries(r.operations);
    if (ops.length) {
      const ms = (v: number) => v.toFixed(3);
      this.log(
        table(
          ['OPERATION', 'COUNT', 'ERRORS', 'ERROR %', 'P50 ms', 'P90 ms', 'P99 ms', 'MAX ms'],
          ops.map(([k, o]) => [
            k,
            fmtInt(o.count),
            fmtInt(o.errors),
            o.count ? ((o.errors / o.count) * 100).toFixed(2) : '0.00',
            ms(o.latencyMs.p50),
            ms(o.latencyMs.p90),
            ms(o.latencyMs.p99),
            ms(o.latencyMs.max),
          ]),
          view,
        ),
      );
    } else {
      this.log(
        c.dim(
          counting
            ? 'no operations recorded yet'
            : remote
              ? "no operation counters: this backend does not fetch the node's own (GET /v1/stats) — `registry node status` shows them"
              : 'no operation counters: a one-shot CLI process has no history — point --backend at a node (registry serve) or use the REPL',
        ),
      );
    }
    if (r.sweeps.length) {
      this.log(
        table(
          ['SWEEP AT', 'CHECKED', 'REMOVED', 'DURATION'],
          r.sweeps.map((s) => [
            new Date(s.at).toISOString(),
            fmtInt(s.checked),
            fmtInt(s.removed),
            fmtMs(s.durationMs),
          ]),
          view,
        ),
      );
    }
    if (r.optimization && typeof r.optimization === 'object') {
      // Nested groups (`cache: {hits, misses, hitRate…}`) become `cache hits`, `cache hit rate`, …
      const rows: Array<[string, string]> = [];
      for (const [k, v] of Object.entries(r.optimization as Record<string, unknown>)) {
        if (v && typeof v === 'object' && !Array.isArray(v))
          for (const [k2, v2] of Object.entries(v))
            rows.push([
              `${k} ${k2 === 'hitRate' ? 'hit rate' : k2}`,
              k2 === 'hitRate' && typeof v2 === 'number' ? `${(v2 * 100).toFixed(1)}%` : fmtField(k2, v2),
            ]);
        else rows.push([k, fmtField(k, v)]);
      }
      this.log(fieldTable(rows, view));
    }
  }
}

/** The node's own fields; one whose name is already a row above (its store's `backend`) is "node …". */
function nodeRows(node: Record<string, unknown>, taken: string[]): Array<[string, string]> {
  return Object.entries(node)
    .flatMap(([k, v]) => fieldRows(k, v))
    .map(([k, v]): [string, string] => [taken.includes(k) ? `node ${k}` : k, v]);
}
