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
  revision(): number | undefined;
}

const QUANTILES: Array<[number, 'p50' | 'p90' | 'p99']> = [
  [0.5, 'p50'],
  [0.9, 'p90'],
  [0.99, 'p99'],
];

export function createMetrics(src: MetricsSource): client.Registry {
  const register = new client.Registry();
  client.collectDefaultMetrics({ register, eventLoopMonitoringPrecision: 20 });
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
  new client.Gauge({
    name: 'procreg_operation_duration_seconds',
    help: 'Latency quantiles of registry service operations (HDR histogram over sampled calls).',
    labelNames: ['operation', 'quantile'],
    registers: [register],
    collect() {
      this.reset();
      for (const [op, s] of Object.entries(stats().operations)) {
        if (!s.latencyMs.samples) continue;
        for (const [q, f] of QUANTILES) this.set({ operation: op, quantile: String(q) }, s.latencyMs[f] / 1000);
      }
    },
  });
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
    collect() {
      this.set(src.revision() ?? 0);
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
