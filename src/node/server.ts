/**
 * The registry node (`registry serve`): the registry service over HTTP/JSON (design §3).
 *
 * Built on fastify 5: its router decodes URL-encoded path parameters after matching (keys may
 * hold '/', '%', spaces, unicode), request bodies are validated by JSON schema (ajv, compiled
 * once) and answers by compiled serializers (fast-json-stringify), it has body limits, request
 * timeouts and a graceful close that drains in-flight requests, and logs through pino as JSON
 * on stderr. The route table below is the single source of both the routes and the OpenAPI
 * document served at /v1/openapi.json.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RouteOptions,
} from 'fastify';
import {
  AlreadyRegisteredError,
  asRegistryError,
  CompactedError,
  type Backend,
  type BulkResult,
  type ChangeEvent,
  InvalidInputError,
  type Meta,
  NotFoundError,
  type Registration,
  RegistryError,
} from '../backends/contract.js';
import { openBackend } from '../backends/open.js';
import { BucketDigester } from '../registry/digest.js';
import { parseSignal } from '../registry/liveness.js';
import { type OpenOptions, ProcessRegistry } from '../registry/service.js';
import { MAX_META_BYTES, parseWhere, validateKey, validateNamespace } from '../registry/validate.js';
import { bearerChecker, isLoopback } from './auth.js';
import { currentRevision, withChangeFeed } from './feed.js';
import { createMetrics } from './metrics.js';
import { logStream, type LogFormat } from './log.js';
import { buildOpenApi, errorSchema, type RouteDoc } from './openapi.js';
import { frameworkErrors, installRouterErrors } from './router-errors.js';
import { RestoreStages } from './restore.js';
import { SwitchableBackend } from './switch.js';
import { API, statusFor, toWire } from './wire.js';

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
  return ProcessRegistry.openWith(async (ctx) => {
    const open = async (url: string | undefined, o: Record<string, unknown>) =>
      withChangeFeed(await openBackend(url, o, ctx, opts));
    return new SwitchableBackend(await open(opts.backend, opts.backendOpts ?? {}), open);
  }, opts);
}

// --- JSON schemas (validation, serialization, OpenAPI) ------------------------------------------

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const entrySchema = {
  type: 'object',
  required: ['namespace', 'key', 'pid', 'node', 'meta', 'registeredAt', 'updatedAt'],
  properties: {
    namespace: str,
    key: str,
    pid: int,
    node: str,
    meta: { type: 'object', additionalProperties: true },
    registeredAt: { type: 'number' },
    updatedAt: { type: 'number' },
    pidStart: { type: ['number', 'null'] },
  },
} as const;
const nsKeyParams = { type: 'object', required: ['ns', 'key'], properties: { ns: str, key: str } } as const;
const nsParams = { type: 'object', required: ['ns'], properties: { ns: str } } as const;
const registerBody = {
  type: 'object',
  required: ['pid'],
  additionalProperties: false,
  properties: {
    pid: { type: 'integer', minimum: 1, maximum: 2147483647 },
    node: str,
    meta: { type: 'object' },
    pidStart: { type: ['integer', 'null'] },
    registeredAt: { type: 'integer', minimum: 0 },
    updatedAt: { type: 'integer', minimum: 0 },
    replace: {
      description: 'compare-and-swap: replace the current holder only if it matches (pid, node, registeredAt)',
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { pid: int, node: str, registeredAt: int },
    },
  },
} as const;
const bulkItem = {
  type: 'object',
  required: ['key', 'pid'],
  properties: {
    namespace: str,
    key: str,
    pid: int,
    node: str,
    meta: { type: 'object' },
    pidStart: { type: ['integer', 'null'] },
    registeredAt: int,
    updatedAt: int,
  },
} as const;
const anyObject = { type: 'object', additionalProperties: true } as const;

/** One route: fastify options plus its OpenAPI summary and statuses (src/node/openapi.ts). */
interface Route extends RouteDoc {
  method: 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'POST';
  url: string;
  summary: string;
  schema?: RouteOptions['schema'];
  bodyLimit?: number;
  onRequest?: RouteOptions['onRequest'];
  handler: (req: FastifyRequest, reply: FastifyReply) => unknown;
}

type NsKey = { ns: string; key: string };
type Q = Record<string, string | string[] | undefined>;

// --- the node ----------------------------------------------------------------------------------

export class RegistryNode {
  readonly app: FastifyInstance;
  readonly registry: ProcessRegistry;
  readonly startedAt = Date.now();
  /** Requests answered, by `METHOD route status` (for /metrics). */
  readonly requests = new Map<string, number>();
  private inFlightCount = 0;
  private bulkActive = 0;
  private watchesOpening = 0;
  private readonly limits: { bulkBodyBytes: number; maxBulk: number; maxWatchers: number; watchBuffer: number };
  private readonly streams = new Set<ServerResponse>();
  private readonly routes: Route[];
  private readonly opts: NodeOptions;
  private closing: Promise<void> | null = null;
  private readonly restores: RestoreStages;
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
    };
    this.routes = this.routeTable(this.limits.bulkBodyBytes);
    this.setup();
  }

  /** The bound URL, e.g. http://127.0.0.1:41234. */
  get url(): string {
    return this.boundUrl;
  }

  /** Requests being served now (watch streams excluded). */
  get inFlight(): number {
    return this.inFlightCount;
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
      this.inFlightCount++;
      const res = reply.raw;
      res.once('close', () => {
        if (!this.streams.has(res)) this.inFlightCount--;
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

  private ns(req: FastifyRequest): NsKey {
    return req.params as NsKey;
  }

  // --- routes ------------------------------------------------------------------------------------

  private routeTable(bulkBodyLimit: number): Route[] {
    const reg = this.registry;
    const sync = reg.backend.capabilities.synchronous;
    const entry200 = { 200: entrySchema, '4xx': errorSchema };
    return [
      {
        method: 'PUT',
        url: `${API}/registrations/:ns/:key`,
        summary: 'Register a key for a pid → 201 entry, 409 {code, holder} when a live process holds it',
        errors: [409, 422],
        schema: { params: nsKeyParams, body: registerBody, response: { 201: entrySchema, '4xx': errorSchema } },
        handler: async (req, reply) => {
          const { ns, key } = this.ns(req);
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
          const out = b.replace ? await this.compareAndSwap(entry, b.replace) : await reg.registerEntry(entry);
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
        handler: sync
          ? (req, reply) => {
              const { ns, key } = this.ns(req);
              const e = reg.lookupSync(key, { namespace: ns });
              if (!e) throw new NotFoundError(ns, key);
              reply.send(e);
            }
          : async (req) => {
              const { ns, key } = this.ns(req);
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
          const { ns, key } = this.ns(req);
          const q = req.query as Q;
          const pid = optInt(q.pid, 'pid');
          const registeredAt = optInt(q.registeredAt, 'registeredAt');
          const node = optStr(q.node, 'node');
          if (registeredAt === undefined && node === undefined)
            return { removed: await reg.unregister(key, { namespace: ns, pid }) };
          return {
            removed: await reg.backend.unregister(validateNamespace(ns), validateKey(key), { pid, registeredAt, node }),
          };
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
          const { ns, key } = this.ns(req);
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
          const { ns, key } = this.ns(req);
          const sig = parseSignal(String((req.body as { signal: string | number }).signal));
          return reg.signal(key, sig, { namespace: ns });
        },
      },
      {
        method: 'GET',
        url: `${API}/registrations/:ns`,
        summary:
          'List live entries ordered by key → {items, next}; ?where=field=value (repeatable) &after=KEY &limit=N',
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
          return { removed: await this.clearNamespace(validateNamespace(ns)) };
        },
      },
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
        bodyLimit: bulkBodyLimit,
        // Checked before the body is read: each body in flight costs ~15× its size once parsed.
        onRequest: (_req, reply, done) => {
          if (this.bulkActive >= this.limits.maxBulk)
            return busy(
              reply,
              `the node is already taking ${this.limits.maxBulk} bulk requests (registry serve --max-bulk): retry shortly`,
            );
          this.bulkActive++;
          reply.raw.once('close', () => this.bulkActive--);
          done();
        },
        handler: async (req, reply) => {
          const b = req.body as { entries: Array<Record<string, unknown>>; atomic?: boolean };
          const results = await reg.bulkRegister(b.entries as never, { atomic: b.atomic });
          reply.header('content-type', 'application/json; charset=utf-8');
          return bulkJson(results, (req.query as Q).results === 'compact' ? b.entries : undefined);
        },
      },
      ...this.restoreRoutes(bulkBodyLimit),
      {
        method: 'GET',
        url: `${API}/watch`,
        summary:
          'Change feed from ?since=REV (exclusive) for ?ns=: NDJSON lines, or SSE with Accept: text/event-stream; 410 when compacted',
        errors: [410],
        responses: {
          200: {
            description: 'the change feed, one event per line (NDJSON) or per SSE event; heartbeats every 15 s',
            content: { 'application/x-ndjson': { schema: str }, 'text/event-stream': { schema: str } },
          },
        },
        schema: { querystring: { type: 'object', properties: { ns: str, since: str } } },
        handler: (req, reply) => this.watch(req, reply),
      },
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
          const namespace = validateNamespace(ns);
          if (reg.backend.digest) return reg.backend.digest(namespace, buckets);
          const d = new BucketDigester(buckets);
          for await (const e of reg.entries({ namespace })) d.add(e);
          return d.result();
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
          const sw = reg.backend;
          if (!(sw instanceof SwitchableBackend)) throw new InvalidInputError('this node cannot switch backends');
          req.log.info({ from: sw.url, to: b.backend }, 'switching backend');
          const report = await sw.switchTo(b.backend, b.backendOpts ?? {});
          req.log.info(report, 'switched backend');
          return report;
        },
      },
      {
        method: 'GET',
        url: `${API}/health`,
        summary: 'Backend health plus node fields → 200, or 503 when unhealthy',
        schema: { response: { 200: anyObject, 503: anyObject } },
        handler: async (_req, reply) => {
          const h = await this.health();
          reply.code(h.status === 'unhealthy' ? 503 : 200);
          return h;
        },
      },
      {
        method: 'GET',
        url: `${API}/stats`,
        summary: 'Node uptime, in-flight requests, watchers, revision, per-operation counts and latencies',
        handler: async () => ({ ...reg.statsSnapshot(), ...this.nodeInfo() }),
      },
      {
        method: 'GET',
        url: '/metrics',
        summary: 'Prometheus metrics (text exposition format)',
        responses: {
          200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: str } } },
        },
        handler: async (_req, reply) => {
          const m = (this.metrics ??= createMetrics({
            registry: reg,
            startedAt: this.startedAt,
            inFlight: () => this.inFlightCount,
            watchers: () => this.streams.size,
            requests: this.requests,
            revision: () => currentRevision(reg.backend),
          }));
          reply.header('content-type', m.contentType);
          return m.metrics();
        },
      },
      {
        method: 'GET',
        url: `${API}/openapi.json`,
        summary: 'This API as an OpenAPI 3.1 document',
        handler: async () => this.openapi(),
      },
    ];
  }

  private metrics: ReturnType<typeof createMetrics> | undefined;

  /** Staged restores (src/node/restore.ts): upload in chunks, then one all-or-nothing commit. */
  private restoreRoutes(bulkBodyLimit: number): Route[] {
    const stages = this.restores;
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
            },
          },
        },
        handler: async (req, reply) => {
          reply.code(201);
          return stages.begin(req.body as { mode: 'merge' | 'replace'; count: number; digest: string; id?: string });
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
        bodyLimit: bulkBodyLimit,
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

  /** Uptime, in-flight requests and the backend, for health and stats. */
  nodeInfo() {
    return {
      node: this.registry.nodeName,
      url: this.boundUrl,
      backend: this.registry.backend.url,
      uptimeMs: Date.now() - this.startedAt,
      inFlight: this.inFlightCount,
      watchers: this.streams.size,
      bulkInFlight: this.bulkActive,
      limits: {
        bodyBytes: this.app.initialConfig.bodyLimit,
        bulkBodyBytes: this.limits.bulkBodyBytes,
        maxBulk: this.limits.maxBulk,
        maxWatchers: this.limits.maxWatchers,
        watchBufferBytes: this.limits.watchBuffer,
      },
      revision: currentRevision(this.registry.backend) ?? null,
      pid: process.pid,
      restores: this.restores.info(),
      ...(this.registry.backend instanceof SwitchableBackend
        ? { switchingTo: this.registry.backend.switchingTo, switches: this.registry.backend.history }
        : {}),
    };
  }

  private async health() {
    const info = this.nodeInfo();
    try {
      const h = await this.registry.healthCheck();
      const restore = this.restores.summary();
      return { ...h, ...(restore ? { restore } : {}), nodeInfo: info };
    } catch (err) {
      const e = asRegistryError(err);
      return {
        status: 'unhealthy' as const,
        reasons: [`backend ${this.registry.backend.url}: ${e.message}`],
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        nodeInfo: info,
      };
    }
  }

  /** Register `entry`, replacing the holder when it matches `cond` (or may be replaced anyway). */
  private async compareAndSwap(
    entry: Registration,
    cond: { pid?: number; node?: string; registeredAt?: number },
  ): Promise<Registration> {
    const reg = this.registry;
    if (cond.pid === undefined && cond.node === undefined && cond.registeredAt === undefined)
      throw new InvalidInputError(
        'invalid replace: an empty compare-and-swap condition matches any holder: name pid, node or registeredAt',
      );
    reg.assertRunning(entry);
    const matches = (h: Registration) =>
      (cond.pid === undefined || h.pid === cond.pid) &&
      (cond.node === undefined || h.node === cond.node) &&
      (cond.registeredAt === undefined || h.registeredAt === cond.registeredAt);
    const r = await reg.backend.register(entry, {
      replaceIf: (h) => (h.pid === entry.pid && h.node === entry.node) || !reg.isAlive(h) || matches(h),
    });
    if (!r.ok) throw new AlreadyRegisteredError(r.holder);
    return r.entry;
  }

  private async clearNamespace(namespace: string): Promise<number> {
    const b: Backend = this.registry.backend;
    if (b.clearNamespace) return b.clearNamespace(namespace);
    let n = 0;
    for await (const e of this.registry.entries({ namespace })) if (await b.unregister(e.namespace, e.key)) n++;
    return n;
  }

  /** The change feed as a stream: NDJSON (default) or SSE. Heartbeats every 15 s. */
  private async watch(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const q = req.query as Q;
    const namespace = q.ns === undefined || q.ns === '' ? undefined : validateNamespace(optStr(q.ns, 'ns'));
    const since = optInt(q.since, 'since');
    const backend = this.registry.backend;
    if (!backend.watch) throw new RegistryError('INTERNAL', 'this backend has no change feed');
    if (this.streams.size + this.watchesOpening >= this.limits.maxWatchers)
      return busy(
        reply,
        `the node already serves ${this.limits.maxWatchers} change-feed streams (registry serve --max-watchers): retry later`,
      );
    this.watchesOpening++;
    try {
      await this.openWatch(req, reply, namespace, since);
    } finally {
      this.watchesOpening--;
    }
  }

  private async openWatch(
    req: FastifyRequest,
    reply: FastifyReply,
    namespace: string | undefined,
    since: number | undefined,
  ): Promise<void> {
    const backend = this.registry.backend as Required<Pick<Backend, 'watch'>> & Backend;
    if (since !== undefined) {
      if (since < 0)
        throw new InvalidInputError(`invalid since ${since}: a revision is >= 0 (omit since to watch from now)`);
      const current = backend.currentRevision ? await backend.currentRevision() : undefined;
      if (current !== undefined && since > current)
        throw new InvalidInputError(
          `invalid since ${since}: it is ahead of the feed's current revision ${current}; watch from a revision this node gave you`,
        );
    }
    const sse = /text\/event-stream/.test(req.headers.accept ?? '');
    const res = reply.raw;
    let buffered: ChangeEvent[] | null = [];
    let failure: Error | null = null;
    let open = true;
    const write = (e: ChangeEvent) => {
      if (!open) return;
      const line = JSON.stringify(e);
      res.write(sse ? `id: ${e.revision}\nevent: ${e.type}\ndata: ${line}\n\n` : `${line}\n`);
      // A consumer that stops reading is cut off rather than buffered without bound.
      if (res.writableLength > this.limits.watchBuffer) res.destroy();
    };
    const stop = await backend.watch(
      { namespace, sinceRevision: since },
      (e) => (buffered ? buffered.push(e) : write(e)),
      (err) => {
        failure = err;
        if (!buffered && open) {
          res.write(
            sse
              ? `event: error\ndata: ${JSON.stringify({ code: 'WATCH_FAILED', message: err.message })}\n\n`
              : `${JSON.stringify({ type: 'error', code: 'WATCH_FAILED', message: err.message })}\n`,
          );
          res.end();
        }
      },
    );
    if (failure) {
      stop();
      const msg = (failure as Error).message;
      const compacted = (failure as RegistryError).code === 'COMPACTED' || /compacted/.test(msg);
      throw compacted ? new CompactedError(msg) : new RegistryError('INTERNAL', msg);
    }
    reply.hijack();
    this.streams.add(res);
    this.inFlightCount--;
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-revision': String(currentRevision(backend) ?? ''),
    });
    res.flushHeaders();
    const pending = buffered;
    buffered = null;
    for (const e of pending) write(e);
    const beat = setInterval(
      () =>
        res.write(
          sse
            ? ': heartbeat\n\n'
            : `${JSON.stringify({ type: 'heartbeat', revision: currentRevision(backend) ?? null })}\n`,
        ),
      15_000,
    );
    beat.unref();
    res.once('close', () => {
      open = false;
      clearInterval(beat);
      stop();
      this.streams.delete(res);
    });
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

/** 503 + Retry-After: a limit of the node is full (docs/node.md "Limits"); the client retries. */
function busy(reply: FastifyReply, message: string): void {
  reply.code(503).header('retry-after', '1').send({ code: 'BUSY', message });
}

function optStr(v: string | string[] | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new InvalidInputError(`query parameter ${name} given more than once`);
  return v;
}

function optInt(v: string | string[] | undefined, name: string): number | undefined {
  const s = optStr(v, name);
  if (s === undefined || s === '') return undefined;
  if (!/^-?\d{1,15}$/.test(s)) throw new InvalidInputError(`invalid ${name} ${JSON.stringify(s)}: use a whole number`);
  return Number(s);
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
