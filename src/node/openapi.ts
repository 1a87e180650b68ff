/**
 * The node's OpenAPI 3.1 document (`GET /v1/openapi.json`), generated from the route table in
 * src/node/server.ts so it cannot drift from the routes. Every status a route can answer is listed
 * by its exact code (no `4XX` ranges, no `default`): the route's own (`errors`), plus the ones every
 * route of its kind can give — 400/414 for path parameters (bad key, bad URL encoding, too long),
 * 400 for query parameters, 400/413/415 for a body, 401 with a token, 500/502/503/504 always.
 * Router answers — 404 for an unknown path, 405 for a known path with another method — are in
 * `components.responses` (NoRoute, MethodNotAllowed). test/node/openapi.test.ts validates real
 * answers of every route against this document.
 */
import type { RouteOptions } from 'fastify';

/** What the document needs of a route. */
export interface RouteDoc {
  method: 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'POST';
  url: string;
  summary: string;
  schema?: RouteOptions['schema'];
  /** Error statuses of this route beyond the generic ones (each answered with {code, message}). */
  errors?: number[];
  /** Success responses as OpenAPI response objects, when not JSON (e.g. text/plain, streams). */
  responses?: Record<string, unknown>;
}

export const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: true,
} as const;

const anyObject = { type: 'object', additionalProperties: true } as const;

const STATUS_TEXT: Record<number, string> = {
  400: 'invalid input: a bad key, namespace, query parameter, body or URL encoding',
  401: 'missing or wrong bearer token',
  404: 'not found',
  405: 'method not allowed on this path (the Allow header lists the ones that are)',
  409: 'conflict',
  410: 'gone: the change feed was compacted past the requested revision',
  413: 'request body too large',
  414: 'a path parameter is too long',
  415: 'unsupported Content-Type: send JSON',
  422: 'the process named is dead',
  500: 'internal error',
  502: 'the backend is unreachable',
  503: 'the node is shutting down (or, for health, unhealthy)',
  504: 'the backend timed out',
};

const errorResponse = (code: number) => ({
  description: STATUS_TEXT[code] ?? String(code),
  content: { 'application/json': { schema: errorSchema } },
});

/** Every status a route can answer with {code, message}, sorted. */
export function errorStatuses(r: RouteDoc, token: boolean): number[] {
  const s = (r.schema ?? {}) as { params?: unknown; querystring?: unknown };
  const codes = new Set<number>([500, 502, 503, 504, ...(r.errors ?? [])]);
  if (token) codes.add(401);
  if (s.params) [400, 414].forEach((c) => codes.add(c));
  if (s.querystring) codes.add(400);
  if (r.method !== 'GET') [400, 413, 415].forEach((c) => codes.add(c));
  return [...codes].sort((a, b) => a - b);
}

/** The OpenAPI 3.1 document of `routes`. */
export function buildOpenApi(
  routes: readonly RouteDoc[],
  opts: { token: boolean; schemas: Record<string, unknown> },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const s = (r.schema ?? {}) as {
      params?: { properties?: Record<string, unknown> };
      querystring?: { properties?: Record<string, unknown> };
      body?: unknown;
      response?: Record<string, unknown>;
    };
    const parameters = [
      ...Object.entries(s.params?.properties ?? {}).map(([name, schema]) => ({
        name,
        in: 'path',
        required: true,
        schema,
        description: 'URL-encoded',
      })),
      ...Object.entries(s.querystring?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', schema })),
    ];
    // Success answers: the route's own response objects, else its exact 2xx schemas, else 200 JSON.
    const responses: Record<string, unknown> = { ...r.responses };
    if (!r.responses) {
      for (const [code, schema] of Object.entries(s.response ?? {}))
        if (/^2\d\d$/.test(code)) responses[code] = { description: 'ok', content: { 'application/json': { schema } } };
      if (Object.keys(responses).length === 0)
        responses['200'] = { description: 'ok', content: { 'application/json': { schema: anyObject } } };
    }
    for (const code of errorStatuses(r, opts.token)) {
      const own = s.response?.[String(code)];
      responses[String(code)] ??= own
        ? { description: STATUS_TEXT[code], content: { 'application/json': { schema: own } } }
        : errorResponse(code);
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      parameters,
      ...(s.body
        ? {
            requestBody: {
              required: true,
              content: {
                [r.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json']: { schema: s.body },
              },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'procreg registry node',
      version: '1',
      description:
        'A process registry node: names → live OS processes. Every error is {code, message}; a path not ' +
        'listed answers 404 (components.responses.NoRoute), a listed path with a method not listed 405 ' +
        '(components.responses.MethodNotAllowed, with an Allow header).',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema, ...opts.schemas },
      responses: {
        NoRoute: { ...errorResponse(404), description: 'no such path (code NO_ROUTE)' },
        MethodNotAllowed: {
          ...errorResponse(405),
          headers: { Allow: { schema: { type: 'string' }, description: 'the methods this path answers' } },
        },
      },
    },
    security: opts.token ? [{ bearer: [] }] : [],
    paths,
  };
}
