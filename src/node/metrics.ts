/**
 * Prometheus metrics of a node (`GET /metrics`), with prom-client on a registry of its own.
 * Names follow the Prometheus conventions: `procreg_` prefix, base units (seconds, bytes),
 * `_total` for counters, labels for dimensions (operation, code, route, status). Values are
 * read from the service's counters at scrape time (collect callbacks), so serving a request
 * costs no metric update beyond one Map increment.
 */
import client from 'prom-client';
import type { HealthReport } from '../backends/contract.js';
import type { ProcessRegistry } from '../registry/service.js';

export interface MetricsSource {
  registry: ProcessRegistry;
  startedAt: number;
  inFlight(): number;
  watchers(): number;
  /** Requests answered, by `METHOD route status`. */
  requests: Map<string, number>;
  /** The feed revision (a round trip on etcd); undefined when unknown. */
  revision(): Promise<number | undefined>;
}

/** Upper bounds (seconds) of the latency histogram: 10 µs (a memory lookup) to 10 s (a slow etcd write). */
export const LATENCY_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];

/**
 * prom-client's default `nodejs_active_{handles,requests,resources}_total` are gauges named like
 * counters (promtool rejects the `_total`); the by-type gauges without the suffix stay, and their
 * sum is the total.
 */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * Operation latency as a real Prometheus histogram (`_bucket{le}`, `_sum`, `_count`), built at
 * scrape time from the service's HDR histograms, so it aggregates across nodes
 * (`histogram_quantile(0.99, sum by (le) (rate(procreg_operation_duration_seconds_bucket[5m])))`).
 * It covers the timed sample of calls (see src/registry/stats.ts); `procreg_operations_total`
 * counts every call.
 */
function latencyHistogram(src: MetricsSource, register: client.Registry): void {
  const name = 'procreg_operation_duration_seconds';
  const help = 'Latency of registry service operations, by operation (over the timed sample of calls).';
  const boundsMicros = LATENCY_BUCKETS.map((s) => Math.round(s * 1e6));
  const get = () => {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const [operation, h] of src.registry.stats.histograms(boundsMicros)) {
      if (!h.count) continue;
      LATENCY_BUCKETS.forEach((le, i) =>
        values.push({ metricName: `${name}_bucket`, labels: { operation, le }, value: h.counts[i] ?? 0 }),
      );
      values.push({ metricName: `${name}_bucket`, labels: { operation, le: '+Inf' }, value: h.count });
      values.push({ metricName: `${name}_sum`, labels: { operation }, value: h.sumMicros / 1e6 });
      values.push({ metricName: `${name}_count`, labels: { operation }, value: h.count });
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' };
  };
  register.registerMetric({ name, help, type: 'histogram', aggregator: 'sum', get } as never);
}

export function createMetrics(src: MetricsSource): client.Registry {
  const register = new client.Registry();
  client.collectDefaultMetrics({ register, eventLoopMonitoringPrecision: 20 });
  for (const m of MISNAMED_DEFAULTS) register.removeSingleMetric(m);
  const stats = () => src.registry.statsSnapshot();

  new client.Gauge({
    name: 'procreg_node_uptime_seconds',
    help: 'Seconds since the node started.',
    registers: [register],
    collect() {
      this.set((Date.now() - src.startedAt) / 1000);
    },
  });
  new client.Gauge({
    name: 'procreg_http_requests_in_flight',
    help: 'HTTP requests being served now (watch streams excluded).',
    registers: [register],
    collect() {
      this.set(src.inFlight());
    },
  });
  new client.Gauge({
    name: 'procreg_watch_streams',
    help: 'Open change-feed streams.',
    registers: [register],
    collect() {
      this.set(src.watchers());
    },
  });
  new client.Counter({
    name: 'procreg_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code.',
    labelNames: ['method', 'route', 'status'],
    registers: [register],
    collect() {
      this.reset();
      for (const [k, n] of src.requests) {
        const [method, route, status] = k.split(' ');
        this.inc({ method, route, status }, n);
      }
    },
  });
  new client.Counter({
    name: 'procreg_operations_total',
    help: 'Registry service operations, by operation.',
    labelNames: ['operation'],
    registers: [register],
    collect() {
      this.reset();
      for (const [op, s] of Object.entries(stats().operations)) this.inc({ operation: op }, s.count);
    },
  });
  new client.Counter({
    name: 'procreg_operation_errors_total',
    help: 'Failed registry service operations, by operation and error code.',
    labelNames: ['operation', 'code'],
    registers: [register],
    collect() {
      this.reset();
      for (const [op, s] of Object.entries(stats().operations)) {
        for (const [code, n] of Object.entries(s.errorCodes)) this.inc({ operation: op, code }, n);
      }
    },
  });
  latencyHistogram(src, register);
  new client.Counter({
    name: 'procreg_sweep_removed_total',
    help: 'Dead registrations removed by the recent sweeps the node remembers (last 20).',
    registers: [register],
    collect() {
      this.reset();
      this.inc(stats().sweeps.reduce((a, s) => a + s.removed, 0));
    },
  });
  new client.Gauge({
    name: 'procreg_last_sweep_timestamp_seconds',
    help: 'Unix time of the last sweep of dead registrations (0: none yet).',
    registers: [register],
    collect() {
      const sw = stats().sweeps;
      const last = sw.at(-1);
      this.set(last ? last.at / 1000 : 0);
    },
  });
  new client.Gauge({
    name: 'procreg_feed_revision',
    help: 'Current revision of the change feed.',
    registers: [register],
    async collect() {
      // Left unset (no sample) while the revision is unknown rather than reported as 0.
      const r = await src.revision();
      if (r === undefined) this.reset();
      else this.set(r);
    },
  });
  // One health check per scrape feeds the four gauges below.
  let health: Promise<HealthReport | undefined> | null = null;
  const healthOnce = () => {
    health ??= src.registry.healthCheck().then(
      (h) => h,
      () => undefined,
    );
    setImmediate(() => (health = null));
    return health;
  };
  const healthGauge = (name: string, help: string, field: 'registrations' | 'alive' | 'dead' | 'memoryBytes') =>
    new client.Gauge({
      name,
      help,
      registers: [register],
      async collect() {
        const h = await healthOnce();
        this.set(h ? Number(h[field]) : 0);
      },
    });
  healthGauge(
    'procreg_registrations',
    'Registrations stored by the backend (alive or not yet swept).',
    'registrations',
  );
  healthGauge('procreg_registrations_alive', 'Registrations whose process is alive.', 'alive');
  healthGauge('procreg_registrations_dead', 'Registrations whose process is dead, not yet swept.', 'dead');
  healthGauge('procreg_backend_memory_bytes', 'Bytes the backend holds.', 'memoryBytes');
  new client.Gauge({
    name: 'procreg_health_status',
    help: 'Backend health: 1 for the current status, 0 for the others.',
    labelNames: ['status'],
    registers: [register],
    async collect() {
      const h = await healthOnce();
      for (const s of ['healthy', 'degraded', 'unhealthy'])
        this.set({ status: s }, (h?.status ?? 'unhealthy') === s ? 1 : 0);
    },
  });
  return register;
}
