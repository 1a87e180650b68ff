/**
 * The registry node (`registry serve`): the registry service over HTTP/JSON (design §3).
 *
 * Built on fastify 5: its router decodes URL-encoded path parameters after matching (keys may
 * hold '/', '%', spaces, unicode), request bodies are validated by JSON schema (ajv, compiled
 * once) and answers by compiled serializers (fast-json-stringify), it has body limits, request
 * timeouts and a graceful close that drains in-flight requests, and logs through pino as JSON
 * on stderr. The route table — one file per resource in src/node/routes/ — is the single source
 * of both the routes and the OpenAPI document served at /v1/openapi.json. Every route goes
 * through the registry service (src/registry/service.ts): the node adds transport, limits and
 * its own state, never a rule of its own.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import { asRegistryError, InvalidInputError, RegistryError } from '../backends/contract.js';
import { openBackend } from '../backends/open.js';
import { type OpenOptions, ProcessRegistry } from '../registry/service.js';
import { bearerChecker, isLoopback } from './auth.js';
import { withChangeFeed } from './feed.js';
import { createMetrics } from './metrics.js';
import { logStream, type LogFormat } from './log.js';
import { buildOpenApi } from './openapi.js';
import { frameworkErrors, installRouterErrors } from './router-errors.js';
import { RestoreStages } from './restore.js';
import { feedRevision } from './revision.js';
import { SwitchableBackend } from './switch.js';
import { API, statusFor, toWire } from './wire.js';
import { adminRoutes } from './routes/admin.js';
import { bulkRoutes } from './routes/bulk.js';
import { bulkItem, entrySchema, type NodeContext, type NodeLimits, registerBody, type Route } from './routes/common.js';
import { registrationRoutes } from './routes/registrations.js';
import { restoreRoutes } from './routes/restore.js';
import { statusRoutes } from './routes/status.js';
import { watchRoutes } from './routes/watch.js';

export interface NodeOptions {
  /** The registry the node serves (see `openNodeRegistry`); closed when the node closes. */
  registry: ProcessRegistry;
  /** Bind address (default 127.0.0.1). A non-loopback address needs a token. */
  host?: string;
  /** Port (default 7070; 0 = any free port, see `url`). */
  port?: number;
  /** Bearer token every request must carry (Authorization: Bearer …). */
  token?: string;
  /** TLS certificate and key (PEM): the node speaks https. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Largest request body in bytes (default 1 MiB; metadata alone is limited to 64 KiB). */
  bodyLimit?: number;
  /** Largest bulk request body in bytes (default 64 MiB). */
  bulkBodyLimit?: number;
  /** A request must arrive in full within this many ms (default 30 s), headers within headersTimeout. */
  requestTimeout?: number;
  /** Headers must arrive within this many ms (default 10 s). */
  headersTimeout?: number;
  /** Idle keep-alive connections are closed after this many ms (default 5 s). */
  keepAliveTimeout?: number;
  /** Logs on stderr: JSON lines, or pino-pretty lines on a terminal (src/node/log.ts). */
  logFormat?: LogFormat;
  /** pino log level (default info; `silent` for none). */
  logLevel?: string;
  /** How long close() waits for in-flight requests before cutting connections (default 10 s). */
  drainTimeout?: number;
  /** Bulk requests received or processed at once (default 2); more get 503 + Retry-After. */
  maxBulk?: number;
  /** Change-feed streams at once (default 128); more get 503 + Retry-After. */
  maxWatchers?: number;
  /** A watcher that stops reading is cut off once this many bytes wait for it (default 2 MiB). */
  watchBuffer?: number;
  /** A staged restore receiving no chunk for this many ms is discarded (default 30 s). */
  restoreIdleMs?: number;
  /** Interval of the watch stream's heartbeat lines (default 15 s). */
  heartbeatMs?: number;
}

/** Defaults of the node's resource limits (docs/node.md "Limits"). */
export const NODE_LIMITS = { maxBulk: 2, maxWatchers: 128, watchBuffer: 2 * 1024 * 1024 } as const;

/**
 * Open the registry a node serves: like ProcessRegistry.open, but a backend without a change
 * feed of its own gets the node's (src/node/feed.ts) under the service, so every mutation —
 * requests, lazy cleanup, sweeps — is on /v1/watch; and the store sits in a SwitchableBackend
 * (src/node/switch.ts) so `registry node switch` can move the running node to another one.
 */
export function openNodeRegistry(opts: OpenOptions): Promise<ProcessRegistry> {
  const o = { ...opts };
  return ProcessRegistry.openWith(async (ctx) => {
    const open = async (url: string | undefined, bo: Record<string, unknown>) =>
      withChangeFeed(await openBackend(url, bo, ctx, opts));
    const inner = await openBackend(opts.backend, opts.backendOpts ?? {}, ctx, opts);
    // Lookups come from the cache by default where it pays and stays coherent: a store a lookup
    // costs a round trip to (not synchronous) whose own feed sees every writer (etcd). A
    // synchronous store answers from memory as fast as the cache (bench/RESULTS.md); the node's
    // own feed over a store without one sees only the node's writes (docs/node.md).
    o.cache ??= inner.capabilities.watch && !inner.capabilities.synchronous;
    return new SwitchableBackend(withChangeFeed(inner), open);
  }, o);
}

// --- the node ----------------------------------------------------------------------------------

export class RegistryNode implements NodeContext {
  readonly app: FastifyInstance;
  readonly registry: ProcessRegistry;
  readonly startedAt = Date.now();
  /** Requests answered, by `METHOD route status` (for /metrics). */
  readonly requests = new Map<string, number>();
  /** Requests in flight (watch streams excluded), bulk requests taken, watches being opened. */
  readonly counters = { inFlight: 0, bulkActive: 0, watchesOpening: 0 };
  readonly limits: NodeLimits;
  readonly streams = new Set<ServerResponse>();
  readonly restores: RestoreStages;
  private readonly routes: Route[];
  private readonly opts: NodeOptions;
  private closing: Promise<void> | null = null;
  private metricsRegistry: ReturnType<typeof createMetrics> | undefined;
  private boundUrl = '';

  /** Create, listen, and return the node; `url` is the bound URL (real port when port 0). */
  static async start(opts: NodeOptions): Promise<RegistryNode> {
    const node = new RegistryNode(opts);
    await node.listen();
    return node;
  }

  private constructor(opts: NodeOptions) {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopback(host) && !opts.token) {
      throw new InvalidInputError(
        `refusing to listen on ${host} without a token: pass --token-file FILE (or listen on 127.0.0.1)`,
      );
    }
    this.opts = { ...opts, host };
    this.registry = opts.registry;
    this.restores = new RestoreStages(opts.registry, opts.restoreIdleMs);
    const bodyLimit = opts.bodyLimit ?? 1024 * 1024;
    // Node checks request/headers timeouts every connectionsCheckingInterval (default 30 s): check
    // often enough that a slow client is cut off close to its deadline.
    const checking = { connectionsCheckingInterval: Math.min(1000, opts.requestTimeout ?? 30_000) };
    this.app = Fastify({
      ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key, ...checking } } : { http: checking }),
      logger: { level: opts.logLevel ?? 'info', stream: logStream(opts.logFormat) } as never,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit,
      requestTimeout: opts.requestTimeout ?? 30_000,
      keepAliveTimeout: opts.keepAliveTimeout ?? 5_000,
      connectionTimeout: 0,
      forceCloseConnections: 'idle',
      // Shutdown 503s, bad URLs and over-long parameters answer {code, message} (router-errors.ts).
      return503OnClosing: false,
      frameworkErrors,
      routerOptions: { maxParamLength: 8192 },
      clientErrorHandler: clientError,
      // Strict types: "12" is not a pid. Query strings are parsed by hand below.
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    } as never) as unknown as FastifyInstance;
    this.app.server.headersTimeout = opts.headersTimeout ?? 10_000;
    this.limits = {
      bulkBodyBytes: opts.bulkBodyLimit ?? 64 * 1024 * 1024,
      maxBulk: opts.maxBulk ?? NODE_LIMITS.maxBulk,
      maxWatchers: opts.maxWatchers ?? NODE_LIMITS.maxWatchers,
      watchBuffer: opts.watchBuffer ?? NODE_LIMITS.watchBuffer,
      heartbeatMs: opts.heartbeatMs ?? 15_000,
    };
    this.routes = [
      ...registrationRoutes(this),
      ...bulkRoutes(this),
      ...restoreRoutes(this),
      ...watchRoutes(this),
      ...adminRoutes(this),
      ...statusRoutes(this),
    ];
    this.setup();
  }

  /** The bound URL, e.g. http://127.0.0.1:41234. */
  get url(): string {
    return this.boundUrl;
  }

  /** Requests being served now (watch streams excluded). */
  get inFlight(): number {
    return this.counters.inFlight;
  }

  get watchers(): number {
    return this.streams.size;
  }

  private async listen(): Promise<void> {
    await this.app.listen({ host: this.opts.host, port: this.opts.port ?? 7070 });
    const addr = this.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('the node has no TCP address');
    const h = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
    this.boundUrl = `${this.opts.tls ? 'https' : 'http'}://${h}:${addr.port}`;
  }

  /**
   * Graceful close: stop accepting, end change-feed streams, wait for in-flight requests (at most
   * drainTimeout), then close the registry and its backend.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const drain = this.opts.drainTimeout ?? 10_000;
      const cut = setTimeout(() => this.app.server.closeAllConnections?.(), drain);
      cut.unref();
      try {
        await this.app.close();
      } finally {
        clearTimeout(cut);
        this.restores.close();
        await this.registry.close();
      }
    })();
    return this.closing;
  }

  // --- plumbing ----------------------------------------------------------------------------------

  private setup(): void {
    const app = this.app;
    // Parse JSON ourselves: one code path for application/json and merge-patch+json, and a clear message.
    app.removeAllContentTypeParsers();
    const parseJson = (_req: FastifyRequest, body: string, done: (err: Error | null, v?: unknown) => void) => {
      if (body.length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse(body));
      } catch (e) {
        done(new InvalidInputError(`malformed JSON body: ${(e as Error).message}`));
      }
    };
    app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, parseJson);

    if (this.opts.token) {
      const check = bearerChecker(this.opts.token);
      app.addHook('onRequest', (req, reply, done) => {
        const r = check(req.headers.authorization);
        if (r === 'ok') return done();
        reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="procreg"')
          .send({
            code: 'UNAUTHORIZED',
            message:
              r === 'missing' ? 'missing bearer token: send Authorization: Bearer <token>' : 'wrong bearer token',
          });
      });
    }

    // In-flight count and per-route counters, settled when the response closes (sent or aborted).
    app.addHook('onRequest', (req, reply, done) => {
      this.counters.inFlight++;
      const res = reply.raw;
      res.once('close', () => {
        if (!this.streams.has(res)) this.counters.inFlight--;
        const k = `${req.method} ${req.routeOptions.url ?? 'unknown'} ${res.statusCode}`;
        this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
      });
      done();
    });

    app.setErrorHandler(
      (
        err: Error & { statusCode?: number; code?: string; validation?: unknown; validationContext?: string },
        req,
        reply,
      ) => {
        let status: number;
        let body: Record<string, unknown>;
        if (err instanceof RegistryError) {
          body = toWire(err);
          status = statusFor(String(body.code));
        } else if (err.validation) {
          status = 400;
          body = {
            code: 'INVALID_INPUT',
            message: `invalid ${err.validationContext ?? 'request'}: ${err.message.replace(/^(body|querystring|params)\/?/, '')}`,
          };
        } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
          status = 413;
          body = {
            code: 'PAYLOAD_TOO_LARGE',
            message: `request body too large (limit ${req.routeOptions.bodyLimit ?? this.app.initialConfig.bodyLimit} bytes)`,
          };
        } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
          status = err.statusCode;
          const code = status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status === 408 ? 'TIMEOUT' : 'INVALID_INPUT';
          body = { code, message: status === 415 ? 'send JSON: Content-Type: application/json' : err.message };
        } else {
          status = 500;
          body = toWire(asRegistryError(err));
        }
        if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
        else req.log.debug({ code: body.code, url: req.url }, 'request refused');
        reply.code(status).send(body);
      },
    );
    installRouterErrors(app, { closing: () => this.closing !== null, api: API });

    for (const r of this.routes) {
      app.route({
        method: r.method,
        url: r.url,
        schema: r.schema,
        bodyLimit: r.bodyLimit,
        ...(r.onRequest ? { onRequest: r.onRequest } : {}),
        handler: r.handler,
      });
    }
    app.addHook('preClose', (done) => {
      for (const s of this.streams) s.end();
      done();
    });
  }

  /** Uptime, in-flight requests, the backend and its feed revision (omitted when unknown), for health and stats. */
  async nodeInfo() {
    const revision = await feedRevision(this.registry);
    return {
      node: this.registry.nodeName,
      url: this.boundUrl,
      backend: this.registry.url,
      uptimeMs: Date.now() - this.startedAt,
      inFlight: this.counters.inFlight,
      watchers: this.streams.size,
      bulkInFlight: this.counters.bulkActive,
      limits: {
        bodyBytes: this.app.initialConfig.bodyLimit,
        bulkBodyBytes: this.limits.bulkBodyBytes,
        maxBulk: this.limits.maxBulk,
        maxWatchers: this.limits.maxWatchers,
        watchBufferBytes: this.limits.watchBuffer,
      },
      ...(revision !== undefined ? { revision } : {}),
      pid: process.pid,
      restores: this.restores.info(),
      ...(this.registry.backend instanceof SwitchableBackend
        ? { switchingTo: this.registry.backend.switchingTo, switches: this.registry.backend.history }
        : {}),
    };
  }

  /** Prometheus metrics of this node (src/node/metrics.ts), made on first use. */
  metrics(): ReturnType<typeof createMetrics> {
    const reg = this.registry;
    return (this.metricsRegistry ??= createMetrics({
      registry: reg,
      startedAt: this.startedAt,
      inFlight: () => this.counters.inFlight,
      watchers: () => this.streams.size,
      requests: this.requests,
      revision: () => feedRevision(reg),
    }));
  }

  async health() {
    // The node's fields (a round trip for the revision on etcd) beside the backend's own check.
    const infoP = this.nodeInfo();
    try {
      const [h, info] = await Promise.all([this.registry.healthCheck(), infoP]);
      const restore = this.restores.summary();
      return { ...h, ...(restore ? { restore } : {}), nodeInfo: info };
    } catch (err) {
      const e = asRegistryError(err);
      return {
        status: 'unhealthy' as const,
        reasons: [`backend ${this.registry.url}: ${e.message}`],
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        nodeInfo: await infoP, // never rejects: an unknown revision is omitted
      };
    }
  }

  /** The OpenAPI 3.1 document, generated from the route table. */
  openapi(): Record<string, unknown> {
    return buildOpenApi(this.routes, {
      token: Boolean(this.opts.token),
      schemas: { Registration: entrySchema, RegisterRequest: registerBody, BulkItem: bulkItem },
    });
  }
}

// --- helpers -------------------------------------------------------------------------------------

/** Unparseable HTTP, slow requests, huge headers: answered with the same {code, message} JSON. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return void socket.destroy();
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'TIMEOUT', 'request not received in time: the node cuts off slow requests']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'INVALID_INPUT', 'request headers too large']
        : [400, 'INVALID_INPUT', 'malformed HTTP request'];
  const body = JSON.stringify({ code, message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
