/**
 * The router's own answers in the node's {code, message} form, never fastify's
 * `{statusCode, code: 'FST_ERR_…', error}`: 404 NO_ROUTE for an unknown path, 405 (with Allow) for a
 * known path with another method, 400 for a path that is not valid URL encoding, 414 for a path
 * parameter over the router's limit, and 503 CLOSED for a request arriving while the node shuts
 * down. Registered from src/node/server.ts; documented in src/node/openapi.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

interface Known {
  method: string;
  url: string;
  pattern: RegExp;
}

const known = new WeakMap<FastifyInstance, Known[]>();

/** Every route registered on `app` after installRouterErrors (HEAD routes included): for tests. */
export function registeredRoutes(app: FastifyInstance): Array<{ method: string; url: string }> {
  return (known.get(app) ?? []).map((k) => ({ method: k.method, url: k.url }));
}

/** A route URL (`/v1/registrations/:ns/:key`) as a regular expression over request paths. */
function patternOf(url: string): RegExp {
  const esc = url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${esc}$`);
}

/** Fastify's `frameworkErrors` option: bad URL encoding and over-long path parameters. */
export function frameworkErrors(err: Error & { code?: string }, req: FastifyRequest, reply: FastifyReply): void {
  const path = (req.raw.url ?? '').split('?')[0];
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
    void reply.code(414).send({
      code: 'INVALID_INPUT',
      message: `path too long: a path parameter of ${path?.slice(0, 80)}… is over the node's limit; keys are at most 512 bytes`,
    });
  else if (err.code === 'FST_ERR_BAD_URL')
    void reply.code(400).send({
      code: 'INVALID_INPUT',
      message: `invalid URL encoding in ${path}: percent-encode keys and namespaces (encodeURIComponent)`,
    });
  else void reply.code(500).send({ code: 'INTERNAL', message: 'the router failed to match the request' });
}

/** Install the 404/405 handler, the shutdown 503 and the route recorder on `app` (before its routes). */
export function installRouterErrors(app: FastifyInstance, opts: { closing(): boolean; api: string }): void {
  const routes: Known[] = [];
  known.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const m of Array.isArray(r.method) ? r.method : [r.method])
      routes.push({ method: m, url: r.url ?? '', pattern: patternOf(r.url ?? '') });
  });
  app.addHook('onRequest', (_req, reply, done) => {
    if (!opts.closing()) return done();
    reply
      .code(503)
      .header('connection', 'close')
      .send({ code: 'CLOSED', message: 'the node is shutting down: retry on another node or after it restarts' });
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const allow = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))];
    if (allow.length > 0) {
      void reply
        .code(405)
        .header('allow', allow.join(', '))
        .send({
          code: 'METHOD_NOT_ALLOWED',
          message: `${req.method} is not allowed on ${path}: use ${allow.join(', ')}`,
        });
      return;
    }
    void reply.code(404).send({
      code: 'NO_ROUTE',
      message: `no route ${req.method} ${path}: see GET ${opts.api}/openapi.json`,
    });
  });
}
