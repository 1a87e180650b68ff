/**
 * The OpenAPI document says what the node really does: real answers of every route (successes,
 * refusals, router errors) are validated against `GET /v1/openapi.json` — status listed for that
 * operation by its exact code, Content-Type listed, JSON body valid against the schema (ajv,
 * JSON Schema 2020-12, the dialect of OpenAPI 3.1). Every operation in the document must be
 * exercised here and every route the node registers must be in the document, so a route or a
 * status added later fails this test until it is documented (and probed below).
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { RegistryNode } from '../../src/node/server.js';
import { registeredRoutes } from '../../src/node/router-errors.js';
import { deadPid, killAllSleepers, spawnSleeper, waitFor, type Sleeper } from '../support/processes.js';
import { startNode } from '../support/node.js';
import { tempDir } from '../support/tmp.js';

interface Res {
  method: string;
  path: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

type Doc = {
  paths: Record<string, Record<string, { responses: Record<string, Resp> }>>;
  components: { responses: Record<string, Resp> };
};
type Resp = { content?: Record<string, { schema: object }>; headers?: Record<string, unknown> };

const TOKEN = 'openapi-test-token';

/** One request on a fresh connection; `stream` reads only the head and first chunk (watch). */
function send(
  base: string,
  method: string,
  path: string,
  opts: { body?: string; type?: string; headers?: Record<string, string>; auth?: boolean; stream?: boolean } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.auth !== false) headers.authorization = `Bearer ${TOKEN}`;
    if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'application/json';
    const req = http.request(`${base}${path}`, { method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (opts.stream) {
          res.destroy();
          resolve({ method, path, status: res.statusCode!, headers: res.headers, text });
        }
      });
      res.on('end', () => resolve({ method, path, status: res.statusCode!, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The document's path template matching a request path (`/v1/registrations/{ns}/{key}`). */
function templateOf(doc: Doc, path: string): string | undefined {
  const p = path.split('?')[0]!;
  const matches = Object.keys(doc.paths).filter((t) =>
    new RegExp(`^${t.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/]+')}$`).test(p),
  );
  // A static path wins over a template (/v1/registrations/x vs /v1/registrations/{ns}).
  return matches.sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0))[0];
}

/** Why `r` does not match the document (undefined when it does). */
function mismatch(doc: Doc, ajv: Ajv2020, r: Res): string | undefined {
  const where = `${r.method} ${r.path.slice(0, 100)} → ${r.status}`;
  const template = templateOf(doc, r.path);
  let resp: Resp | undefined;
  if (!template) {
    if (r.status !== 404) return `${where}: undocumented path`;
    resp = doc.components.responses.NoRoute;
  } else {
    const op = doc.paths[template]![r.method.toLowerCase()];
    if (!op) {
      if (r.status !== 405) return `${where}: method not in the document, expected 405`;
      const allowed = Object.keys(doc.paths[template]!)
        .map((m) => m.toUpperCase())
        .sort();
      const allow = String(r.headers.allow ?? '')
        .split(/,\s*/)
        .filter((m) => m !== 'HEAD')
        .sort();
      if (JSON.stringify(allow) !== JSON.stringify(allowed)) return `${where}: Allow ${r.headers.allow} ≠ ${allowed}`;
      resp = doc.components.responses.MethodNotAllowed;
    } else {
      resp = op.responses[String(r.status)];
      if (!resp) return `${where}: status not documented (documented: ${Object.keys(op.responses).join(' ')})`;
    }
  }
  const type = String(r.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  const media = resp?.content?.[type];
  if (!media) return `${where}: Content-Type ${type} not documented (${Object.keys(resp?.content ?? {}).join(', ')})`;
  let body: unknown = r.text;
  if (type === 'application/json') {
    try {
      body = JSON.parse(r.text);
    } catch {
      return `${where}: not JSON: ${r.text.slice(0, 100)}`;
    }
  }
  const validate = ajv.compile(media.schema);
  if (!validate(body)) return `${where}: body ${ajv.errorsText(validate.errors)}: ${r.text.slice(0, 200)}`;
  return undefined;
}

const reg = (ns: string, key: string, suffix = '') =>
  `/v1/registrations/${encodeURIComponent(ns)}/${encodeURIComponent(key)}${suffix}`;

describe('node: the OpenAPI document matches real answers', function () {
  this.timeout(120_000);
  let node: RegistryNode;
  let doc: Doc;
  let ajv: Ajv2020;
  let a: Sleeper;
  let b: Sleeper;
  const seen: Res[] = [];
  const tmp = tempDir('procreg-openapi-');

  before(async () => {
    node = await startNode('memory:', { token: TOKEN, bodyLimit: 16 * 1024 });
    [a, b] = [await spawnSleeper(), await spawnSleeper()];
    const r = await send(node.url, 'GET', '/v1/openapi.json');
    doc = JSON.parse(r.text) as Doc;
    ajv = new Ajv2020({ strict: false, allErrors: true });
  });
  after(async () => {
    await node?.close();
    await killAllSleepers();
    tmp.cleanup();
  });

  it('has exact statuses only: no ranges, no default', () => {
    for (const [path, item] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(item))
        for (const code of Object.keys(op.responses)) expect(code, `${method} ${path}`).to.match(/^[1-5]\d\d$/);
  });

  it('every route the node registers is in the document', () => {
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`)),
    );
    const routes = registeredRoutes(node.app)
      .filter((r) => r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
    expect(routes.length).to.be.greaterThan(10);
    expect(
      routes.filter((r) => !documented.has(r)),
      'routes missing from the document',
    ).to.deep.equal([]);
    expect(
      [...documented].filter((d) => !routes.includes(d)),
      'documented but not routed',
    ).to.deep.equal([]);
  });

  it('real answers of every route, refusals and router errors included, match the document', async () => {
    const u = node.url;
    const json = (v: unknown) => JSON.stringify(v);
    const go = async (method: string, path: string, opts: Parameters<typeof send>[3] = {}) => {
      const r = await send(u, method, path, opts);
      seen.push(r);
      return r;
    };
    const dead = await deadPid();
    // registrations
    expect((await go('PUT', reg('api', 'k1'), { body: json({ pid: a.pid, meta: { role: 'web' } }) })).status).to.equal(
      201,
    );
    expect((await go('PUT', reg('api', 'k1'), { body: json({ pid: b.pid }) })).status).to.equal(409);
    expect((await go('PUT', reg('api', 'k2'), { body: json({ pid: 'x' }) })).status).to.equal(400);
    expect((await go('PUT', reg('api', 'k2'), { body: '{"pid":' })).status).to.equal(400);
    expect(
      (await go('PUT', reg('api', 'k2'), { body: 'pid=1', type: 'application/x-www-form-urlencoded' })).status,
    ).to.equal(415);
    expect(
      (await go('PUT', reg('api', 'k2'), { body: json({ pid: a.pid, meta: { x: 'y'.repeat(20_000) } }) })).status,
    ).to.equal(413);
    expect((await go('PUT', reg('api', 'k1'), { body: json({ pid: dead, replace: { pid: a.pid } }) })).status).to.equal(
      422,
    );
    expect((await go('PUT', reg('api', 'k1'), { body: json({ pid: a.pid }), auth: false })).status).to.equal(401);
    expect((await go('GET', reg('api', 'k1'))).status).to.equal(200);
    expect((await go('GET', reg('api', 'absent'))).status).to.equal(404);
    expect((await go('GET', '/v1/registrations/api/%E0%A4%A')).status).to.equal(400);
    expect((await go('GET', reg('api', 'x'.repeat(9000)))).status).to.equal(414);
    expect(
      (await go('GET', reg('api', 'k1'), { headers: { authorization: 'Bearer wrong' }, auth: false })).status,
    ).to.equal(401);
    expect((await go('PUT', reg('api', 'k1', '/meta'), { body: json({ role: 'db' }) })).status).to.equal(200);
    expect((await go('PUT', reg('api', 'absent', '/meta'), { body: json({}) })).status).to.equal(404);
    expect(
      (await go('PATCH', reg('api', 'k1', '/meta'), { body: json({ port: 1 }), type: 'application/merge-patch+json' }))
        .status,
    ).to.equal(200);
    expect(
      (await go('PATCH', reg('api', 'absent', '/meta'), { body: json({}), type: 'application/merge-patch+json' }))
        .status,
    ).to.equal(404);
    expect((await go('GET', '/v1/registrations/api?where=role=db&limit=10')).status).to.equal(200);
    expect((await go('GET', '/v1/registrations/api?limit=many')).status).to.equal(400);
    expect((await go('DELETE', `${reg('api', 'k1')}?pid=${b.pid}&node=elsewhere&registeredAt=1`)).status).to.equal(200);
    expect((await go('DELETE', `${reg('api', 'k1')}?pid=abc`)).status).to.equal(400);
    expect((await go('POST', reg('api', 'k1'))).status).to.equal(405);
    // signals, checked on the node (the node's own entries; a harmless SIGCONT to a sleeper)
    expect((await go('PUT', reg('api', 'sig'), { body: json({ pid: a.pid }) })).status).to.equal(201);
    expect((await go('POST', reg('api', 'sig', '/signal'), { body: json({ signal: 'SIGCONT' }) })).status).to.equal(
      200,
    );
    expect((await go('POST', reg('api', 'sig', '/signal'), { body: json({ signal: 'SIGNOPE' }) })).status).to.equal(
      400,
    );
    expect((await go('POST', reg('api', 'absent', '/signal'), { body: json({ signal: 'SIGCONT' }) })).status).to.equal(
      404,
    );
    // staged restores: open, a chunk, a replayed chunk, a refused commit, discard
    const entry = { namespace: 'api', key: 'r1', pid: a.pid, node: 'h', meta: {}, registeredAt: 1, updatedAt: 1 };
    const open = await go('POST', '/v1/restore', { body: json({ mode: 'merge', count: 2, digest: '0'.repeat(32) }) });
    expect(open.status).to.equal(201);
    const id = String((JSON.parse(open.text) as { id: string }).id);
    expect(
      (await go('POST', '/v1/restore', { body: json({ mode: 'sideways', count: 1, digest: 'x' }) })).status,
    ).to.equal(400);
    expect(
      (await go('POST', `/v1/restore/${id}/entries`, { body: json({ offset: 0, entries: [entry] }) })).status,
    ).to.equal(200);
    expect(
      (await go('POST', `/v1/restore/${id}/entries`, { body: json({ offset: 0, entries: [entry] }) })).status,
    ).to.equal(409);
    expect((await go('POST', `/v1/restore/${id}/commit`)).status).to.equal(400);
    expect((await go('POST', `/v1/restore/${id}/commit`)).status).to.equal(404);
    const again = await go('POST', '/v1/restore', { body: json({ mode: 'merge', count: 1, digest: '0'.repeat(32) }) });
    const id2 = String((JSON.parse(again.text) as { id: string }).id);
    expect((await go('DELETE', `/v1/restore/${id2}`)).status).to.equal(200);
    expect(
      (await go('POST', `/v1/restore/${id2}/entries`, { body: json({ offset: 0, entries: [] }) })).status,
    ).to.equal(404);
    // bulk, namespaces, counts, digests
    const bulk = {
      entries: [
        { key: 'b1', pid: a.pid },
        { key: 'b2', pid: b.pid, namespace: 'other' },
      ],
    };
    expect((await go('POST', '/v1/bulk', { body: json(bulk) })).status).to.equal(200);
    expect((await go('POST', '/v1/bulk?results=compact', { body: json(bulk) })).status).to.equal(200);
    expect((await go('POST', '/v1/bulk', { body: json({ items: [] }) })).status).to.equal(400);
    expect((await go('GET', '/v1/namespaces')).status).to.equal(200);
    expect((await go('GET', '/v1/count')).status).to.equal(200);
    expect((await go('GET', '/v1/count?ns=api')).status).to.equal(200);
    expect((await go('GET', '/v1/count?ns=a&ns=b')).status).to.equal(400);
    expect((await go('GET', '/v1/digest/api?buckets=8')).status).to.equal(200);
    expect((await go('GET', '/v1/digest/api?buckets=0')).status).to.equal(400);
    expect((await go('DELETE', '/v1/registrations/other')).status).to.equal(200);
    // the change feed, both formats, and a refusal
    const nd = await go('GET', '/v1/watch?since=0', { stream: true });
    expect(nd.status).to.equal(200);
    const sse = await go('GET', '/v1/watch?since=0', { stream: true, headers: { accept: 'text/event-stream' } });
    expect(sse.headers['content-type']).to.equal('text/event-stream');
    expect((await go('GET', '/v1/watch?since=-1')).status).to.equal(400);
    // monitoring
    expect((await go('POST', '/v1/cleanup')).status).to.equal(200);
    expect((await go('GET', '/v1/stats')).status).to.equal(200);
    expect((await go('GET', '/metrics')).status).to.equal(200);
    expect((await go('GET', '/v1/openapi.json')).status).to.equal(200);
    expect((await go('GET', '/v1/health')).status).to.equal(200);
    expect((await go('GET', '/v2/nothing')).status).to.equal(404);
    expect((await go('GET', '/')).status).to.equal(404);
    expect((await go('DELETE', '/metrics')).status).to.equal(405);
    // switching the store
    expect((await go('POST', '/v1/admin/switch', { body: json({}) })).status).to.equal(400);
    const to = `sqlite:${join(tmp.dir, 'switched.db')}`;
    expect((await go('POST', '/v1/admin/switch', { body: json({ backend: to }) })).status).to.equal(200);
    // unhealthy: most registrations dead → 503 with the report
    const procs = await Promise.all([1, 2, 3, 4].map(() => spawnSleeper()));
    for (const [i, p] of procs.entries())
      expect((await go('PUT', reg('sick', `s${i}`), { body: json({ pid: p.pid }) })).status).to.equal(201);
    for (const p of procs.slice(0, 3)) await p.kill();
    expect((await go('GET', '/v1/health')).status).to.equal(503);

    const failures = seen.map((r) => mismatch(doc, ajv, r)).filter((m) => m !== undefined);
    expect(failures, `${failures.length} of ${seen.length} answers do not match the document`).to.deep.equal([]);
    for (const r of seen) expect(r.text, `${r.method} ${r.path}`).to.not.match(/FST_ERR|"statusCode"/);

    // Every documented operation was exercised.
    const exercised = new Set(seen.map((r) => `${r.method.toLowerCase()} ${templateOf(doc, r.path)}`));
    const missing = Object.entries(doc.paths).flatMap(([p, item]) =>
      Object.keys(item)
        .map((m) => `${m} ${p}`)
        .filter((k) => !exercised.has(k)),
    );
    expect(missing, 'documented operations no request here exercised: add them').to.deep.equal([]);
  });

  it('the validator rejects an undocumented status, a wrong body and an undocumented path', () => {
    const base = { headers: { 'content-type': 'application/json' } };
    expect(mismatch(doc, ajv, { ...base, method: 'GET', path: '/v1/namespaces', status: 418, text: '{}' })).to.match(
      /status not documented/,
    );
    expect(
      mismatch(doc, ajv, { ...base, method: 'GET', path: reg('a', 'b'), status: 404, text: '{"error":"x"}' }),
    ).to.match(/must have required property/);
    expect(mismatch(doc, ajv, { ...base, method: 'GET', path: '/v1/nothing', status: 200, text: '{}' })).to.match(
      /undocumented path/,
    );
    expect(
      mismatch(doc, ajv, {
        headers: { 'content-type': 'text/html' },
        method: 'GET',
        path: '/metrics',
        status: 200,
        text: '',
      }),
    ).to.match(/Content-Type text\/html not documented/);
  });
});

describe('node: a request arriving while the node closes', () => {
  it('is answered 503 {code: CLOSED, message}, not fastify’s own body', async () => {
    const node = await startNode('memory:', { drainTimeout: 5000 });
    const s = net.connect(Number(new URL(node.url).port), '127.0.0.1');
    await once(s, 'connect');
    let got = '';
    s.on('data', (c) => (got += c));
    // A request in flight (half its body sent) keeps the connection open through close(); the
    // request pipelined behind it arrives while the node is closing.
    const body = JSON.stringify({ pid: process.pid });
    s.write(
      `PUT ${reg('default', 'c1')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 3)}`,
    );
    await waitFor(() => node.inFlight === 1, 5000, 'the half-sent request to be in flight');
    const closing = node.close();
    s.write(`${body.slice(3)}GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => /HTTP\/1\.1 503[^]*\}$/.test(got), 5000, `a 503 after the 201: ${got}`);
    s.destroy();
    await closing;
    expect(got).to.match(/^HTTP\/1\.1 201 /);
    const answer = got.slice(got.lastIndexOf('HTTP/1.1 503'));
    expect(answer).to.match(/\r\n\r\n\{"code":"CLOSED","message":"[^"]+"\}$/);
    expect(answer).to.not.match(/FST_ERR|statusCode/);
  });
});
