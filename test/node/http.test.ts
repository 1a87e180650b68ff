/**
 * The node's HTTP surface with a real node on port 0: routes, bad input, limits, auth, faults,
 * the change feed, monitoring. Every refusal must be a JSON {code, message}, nothing half-written,
 * and the node must keep serving afterwards.
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { RegistryNode } from '../../src/node/server.js';
import { killAllSleepers, spawnSleeper, waitFor, type Sleeper } from '../support/processes.js';
import { present } from '../support/expect.js';
import { startNode } from '../support/node.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One plain HTTP request (fresh connection). */
function request(
  base: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const req = http.request(
      u,
      {
        method,
        agent: false,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const reg = (ns: string, key: string) => `/v1/registrations/${encodeURIComponent(ns)}/${encodeURIComponent(key)}`;

/** Every error answer: JSON {code, message}, no stack trace. */
function assertCleanError(r: Res, status: number, code?: string) {
  expect(r.status, `status ${r.status}: ${r.text}`).to.equal(status);
  expect(typeof r.json?.code, `JSON error body: ${r.text}`).to.equal('string');
  expect(typeof r.json?.message).to.equal('string');
  if (code) expect(r.json.code).to.equal(code);
  expect(r.text, 'no stack trace').to.not.match(/\n\s+at |\.js:\d+|node_modules/);
}

describe('node: routes and bad input', () => {
  let node: RegistryNode;
  let base: string;
  let me: Sleeper;
  before(async () => {
    node = await startNode('memory:', { bodyLimit: 64 * 1024 * 4, requestTimeout: 1500, headersTimeout: 1000 });
    base = node.url;
    me = await spawnSleeper();
  });
  after(async () => {
    await node.close();
    await killAllSleepers();
  });

  it('register, lookup, meta, list, unregister with awkward keys', async () => {
    for (const key of ['a/b', 'with space', '100%', 'ünïcødé/ключ', 'x?y#z', 'foo/meta']) {
      const put = await request(
        base,
        'PUT',
        reg('default', key),
        JSON.stringify({ pid: me.pid, meta: { role: 'web' } }),
      );
      expect(put.status, put.text).to.equal(201);
      expect(put.json.key).to.equal(key);
      const get = await request(base, 'GET', reg('default', key));
      expect(get.status).to.equal(200);
      expect(get.json.key).to.equal(key);
      expect(get.json.pid).to.equal(me.pid);
      const patch = await request(base, 'PATCH', `${reg('default', key)}/meta`, JSON.stringify({ port: 80 }), {
        'content-type': 'application/merge-patch+json',
      });
      expect(patch.json.meta).to.deep.equal({ role: 'web', port: 80 });
    }
    const list = await request(base, 'GET', '/v1/registrations/default?where=role=web&limit=2');
    expect(list.status).to.equal(200);
    expect(list.json.items.length).to.equal(2);
    expect(list.json.next).to.be.ok;
    const del = await request(base, 'DELETE', reg('default', 'a/b'));
    expect(del.json).to.deep.equal({ removed: true });
    expect((await request(base, 'DELETE', reg('default', 'a/b'))).json).to.deep.equal({ removed: false });
    assertCleanError(await request(base, 'GET', reg('default', 'a/b')), 404, 'NOT_FOUND');
  });

  it('conflict is 409 with the holder', async () => {
    const other = await spawnSleeper();
    await request(base, 'PUT', reg('c', 'k'), JSON.stringify({ pid: me.pid }));
    const r = await request(base, 'PUT', reg('c', 'k'), JSON.stringify({ pid: other.pid }));
    assertCleanError(r, 409, 'ALREADY_REGISTERED');
    expect(r.json.holder.pid).to.equal(me.pid);
  });

  it('issue 12 item 12: an empty compare-and-swap condition is a 400 and the live holder stays', async () => {
    const other = await spawnSleeper();
    const put = await request(base, 'PUT', reg('cas', 'k'), JSON.stringify({ pid: me.pid }));
    expect(put.status, put.text).to.equal(201);
    const r = await request(base, 'PUT', reg('cas', 'k'), JSON.stringify({ pid: other.pid, replace: {} }));
    assertCleanError(r, 400, 'INVALID_INPUT');
    expect(r.json.message).to.match(/replace/);
    const get = await request(base, 'GET', reg('cas', 'k'));
    expect(get.json.pid, 'the live holder was not overwritten').to.equal(me.pid);
  });

  it('malformed JSON, wrong types, bad names: 400 with a clear message, nothing written', async () => {
    const cases: Array<[string, string, string | undefined, number, RegExp]> = [
      ['PUT', reg('bad', 'k1'), '{"pid": 1,', 400, /malformed JSON/],
      ['PUT', reg('bad', 'k2'), JSON.stringify({ pid: String(me.pid) }), 400, /pid/],
      ['PUT', reg('bad', 'k3'), JSON.stringify({ pid: me.pid, meta: [1, 2] }), 400, /meta/],
      ['PUT', reg('bad', 'k4'), JSON.stringify({ pid: me.pid, meta: null }), 400, /meta/],
      ['PUT', reg('bad', 'k5'), JSON.stringify({ pid: -3 }), 400, /pid/],
      ['PUT', reg('bad', 'k6'), JSON.stringify({ pid: me.pid, extra: 1 }), 400, /additional/],
      ['PUT', reg('bad', 'k7'), '[]', 400, /object/],
      ['PUT', reg('bad!ns', 'k8'), JSON.stringify({ pid: me.pid }), 400, /namespace/],
      ['PUT', reg('bad', 'k\u0001'), JSON.stringify({ pid: me.pid }), 400, /control/],
      ['PUT', reg('bad', 'x'.repeat(600)), JSON.stringify({ pid: me.pid }), 400, /512/],
      ['GET', '/v1/registrations/bad?limit=ten', undefined, 400, /limit/],
      ['GET', '/v1/digest/bad?buckets=0', undefined, 400, /buckets/],
      ['POST', '/v1/bulk', JSON.stringify({ entries: 'no' }), 400, /array/],
    ];
    for (const [method, path, body, status, msg] of cases) {
      const r = await request(base, method, path, body);
      assertCleanError(r, status, 'INVALID_INPUT');
      expect(r.json.message, `${method} ${path}: ${r.json.message}`).to.match(msg);
    }
    const wrongType = await request(base, 'PUT', reg('bad', 'k9'), 'pid=1', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assertCleanError(wrongType, 415);
    expect((await request(base, 'GET', '/v1/registrations/bad')).json.items, 'nothing written').to.deep.equal([]);
  });

  it('oversized bodies and metadata: 413 / 400, node keeps serving', async () => {
    const huge = JSON.stringify({ pid: me.pid, meta: { blob: 'x'.repeat(2 * 1024 * 1024) } });
    const r = await request(base, 'PUT', reg('big', 'k'), huge).catch((e) => e);
    // The node may answer 413 or reset the connection while the rest of the body is still coming.
    if (!(r instanceof Error)) assertCleanError(r, 413, 'PAYLOAD_TOO_LARGE');
    const meta = await request(
      base,
      'PUT',
      reg('big', 'k'),
      JSON.stringify({ pid: me.pid, meta: { blob: 'x'.repeat(70 * 1024) } }),
    );
    assertCleanError(meta, 400, 'INVALID_INPUT');
    expect(meta.json.message).to.match(/64 KiB|65536|too large/i);
    assertCleanError(await request(base, 'GET', reg('big', 'k')), 404);
    expect((await request(base, 'GET', '/v1/health')).status).to.equal(200);
  });

  it('unknown routes: 404 NO_ROUTE; known routes with another method: 405 with Allow, as JSON', async () => {
    assertCleanError(await request(base, 'GET', '/v2/nothing'), 404, 'NO_ROUTE');
    const wrong = await request(base, 'POST', reg('default', 'k'));
    assertCleanError(wrong, 405, 'METHOD_NOT_ALLOWED');
    expect(wrong.headers.allow).to.equal('PUT, GET, HEAD, DELETE');
    assertCleanError(await request(base, 'GET', '/'), 404, 'NO_ROUTE');
  });

  it('a slow client is cut off; a client that disconnects mid-request writes nothing', async () => {
    // Headers, then half a body, then silence: the node answers 408 or closes within requestTimeout.
    const s = net.connect(Number(new URL(base).port), '127.0.0.1');
    await once(s, 'connect');
    const body = JSON.stringify({ pid: me.pid });
    s.write(
      `PUT ${reg('slow', 'k')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    let got = '';
    s.on('data', (c) => (got += c));
    const t0 = Date.now();
    await Promise.race([
      once(s, 'close'),
      new Promise((_, rej) => setTimeout(() => rej(new Error('slow request not cut off within 10 s')), 10_000)),
    ]);
    expect(Date.now() - t0 < 10_000).to.be.ok;
    expect(got).to.match(/^HTTP\/1.1 408 .*\r\n\r\n\{"code":"TIMEOUT","message":"[^"]+"\}$/s);
    // Garbage instead of HTTP: 400 with the same JSON shape.
    const g = net.connect(Number(new URL(base).port), '127.0.0.1');
    await once(g, 'connect');
    let gotG = '';
    g.on('data', (c) => (gotG += c));
    g.write('NOT HTTP AT ALL\r\n\r\n');
    await once(g, 'close');
    expect(gotG).to.match(/^HTTP\/1.1 400 .*\{"code":"INVALID_INPUT","message":"malformed HTTP request"\}$/s);
    // Disconnect mid-body.
    const d = net.connect(Number(new URL(base).port), '127.0.0.1');
    await once(d, 'connect');
    d.write(
      `PUT ${reg('slow', 'k2')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    d.destroy();
    await waitFor(() => node.inFlight === 0, 10_000, 'in-flight requests to settle');
    assertCleanError(await request(base, 'GET', reg('slow', 'k')), 404);
    assertCleanError(await request(base, 'GET', reg('slow', 'k2')), 404);
    expect((await request(base, 'GET', '/v1/health')).status, 'still serving').to.equal(200);
  });

  it('1,000 concurrent connections are all answered', async () => {
    await request(base, 'PUT', reg('many', 'k'), JSON.stringify({ pid: me.pid }));
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const one = () =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(new URL(reg('many', 'k'), base), { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.end();
      });
    const statuses = await Promise.all(Array.from({ length: 1000 }, one));
    expect(statuses.filter((s) => s === 200).length).to.equal(1000);
    agent.destroy();
    expect((await request(base, 'GET', reg('many', 'k'))).status).to.equal(200);
  });

  it('bulk: per-entry results in order; atomic all or nothing', async () => {
    const entries = [
      { key: 'b1', pid: me.pid, namespace: 'bulk' },
      { key: 'b2', pid: me.pid, namespace: 'bulk', meta: 'no' },
      { key: 'b3', pid: me.pid, namespace: 'bulk', node: 'elsewhere' },
    ];
    const r = await request(base, 'POST', '/v1/bulk', JSON.stringify({ entries }));
    expect(r.status).to.equal(200);
    expect(r.json.results.map((x: { ok: boolean }) => x.ok)).to.deep.equal([true, false, true]);
    expect(r.json.results[1].error.code).to.equal('INVALID_INPUT');
    const a = await request(
      base,
      'POST',
      '/v1/bulk',
      JSON.stringify({
        atomic: true,
        entries: [
          { key: 'a1', pid: me.pid, namespace: 'bulk2' },
          { key: '', pid: me.pid, namespace: 'bulk2' },
        ],
      }),
    );
    expect(a.json.results.map((x: { ok: boolean }) => x.ok)).to.deep.equal([false, false]);
    expect((await request(base, 'GET', '/v1/registrations/bulk2')).json.items).to.deep.equal([]);
  });

  it('issue 12 item 10: bulk items are validated like single writes (registeredAt, updatedAt, pidStart)', async () => {
    const bad: Array<Record<string, unknown>> = [
      { registeredAt: 'abc' },
      { registeredAt: true },
      { registeredAt: { a: 1 } },
      { registeredAt: [1] },
      { registeredAt: -5 },
      { registeredAt: 1.5 },
      { updatedAt: 'x' },
      { updatedAt: [1] },
      { pidStart: 'abc' },
      { pidStart: [1] },
      { pidStart: false },
      { pidStart: -1 },
    ];
    for (const [i, extra] of bad.entries()) {
      const field = Object.keys(extra)[0] ?? '';
      const r = await request(
        base,
        'POST',
        '/v1/bulk',
        JSON.stringify({ entries: [{ key: `v${i}`, pid: me.pid, namespace: 'bulkval', ...extra }] }),
      );
      expect(r.status, r.text).to.equal(200);
      const res0 = r.json.results[0] as { ok: boolean; error?: { code: string; message: string } } | undefined;
      present(res0, 'result');
      expect(res0.ok, `${JSON.stringify(extra)} refused`).to.equal(false);
      expect(res0.error?.code).to.equal('INVALID_INPUT');
      expect(res0.error?.message).to.include(field);
      // the single write path refuses the same value with a 400
      const single = await request(base, 'PUT', reg('bulkval', `s${i}`), JSON.stringify({ pid: me.pid, ...extra }));
      assertCleanError(single, 400, 'INVALID_INPUT');
    }
    const list = await request(base, 'GET', '/v1/registrations/bulkval');
    expect(list.status, list.text).to.equal(200);
    expect(list.json.items).to.deep.equal([]);
    const ok = await request(
      base,
      'POST',
      '/v1/bulk',
      JSON.stringify({ entries: [{ key: 'good', pid: me.pid, namespace: 'bulkval', registeredAt: 5, updatedAt: 6 }] }),
    );
    expect(ok.json.results[0].ok, ok.text).to.equal(true);
    const got = await request(base, 'GET', reg('bulkval', 'good'));
    expect([got.json.registeredAt, got.json.updatedAt]).to.deep.equal([5, 6]);
  });

  it('issue 12 item 17: ?where=__proto__=… matches no entry; watch since in the future or -1 is a 400', async () => {
    await request(base, 'PUT', reg('proto', 'p1'), JSON.stringify({ pid: me.pid, meta: { role: 'x' } }));
    for (const w of ['__proto__={}', 'constructor=' + JSON.stringify(String(Object)), 'toString=undefined']) {
      const r = await request(base, 'GET', `/v1/registrations/proto?where=${encodeURIComponent(w)}`);
      expect(r.status, r.text).to.equal(200);
      expect(r.json.items, w).to.deep.equal([]);
    }
    const own = await request(
      base,
      'PUT',
      reg('proto', 'p2'),
      JSON.stringify({ pid: me.pid, meta: JSON.parse('{"__proto__": "own"}') }),
    );
    expect(own.status, own.text).to.equal(201);
    const r = await request(base, 'GET', `/v1/registrations/proto?where=${encodeURIComponent('__proto__=own')}`);
    expect(r.json.items.map((e: { key: string }) => e.key)).to.deep.equal(['p2']);
    for (const since of ['-1', '999999999']) {
      const w = await request(base, 'GET', `/v1/watch?ns=proto&since=${since}`);
      assertCleanError(w, 400, 'INVALID_INPUT');
      expect(w.json.message).to.match(/since/);
    }
  });

  it('issue 12 item 11: an atomic bulk that rolls back reports no item as written', async () => {
    const other = await spawnSleeper();
    const held = await request(base, 'PUT', reg('atom', 'held'), JSON.stringify({ pid: other.pid }));
    expect(held.status, held.text).to.equal(201);
    const r = await request(
      base,
      'POST',
      '/v1/bulk',
      JSON.stringify({
        atomic: true,
        entries: [
          { key: 'free1', pid: me.pid, namespace: 'atom' },
          { key: 'held', pid: me.pid, namespace: 'atom' },
          { key: 'free2', pid: me.pid, namespace: 'atom' },
        ],
      }),
    );
    expect(r.status, r.text).to.equal(200);
    expect(
      r.json.results.map((x: { ok: boolean }) => x.ok),
      r.text,
    ).to.deep.equal([false, false, false]);
    expect(r.json.results[1].holder.pid).to.equal(other.pid);
    expect(r.json.results[0].error.message).to.match(/not written/);
    const keys = (await request(base, 'GET', '/v1/registrations/atom')).json.items.map((e: { key: string }) => e.key);
    expect(keys).to.deep.equal(['held']);
  });

  it('change feed: NDJSON and SSE, resumable from a revision', async () => {
    const events: Array<{ revision: number; type: string; key: string }> = [];
    const req = http.request(new URL('/v1/watch?ns=feed', base), { agent: false });
    req.end();
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    expect(res.headers['content-type']).to.equal('application/x-ndjson');
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buf += c;
      for (let i; (i = buf.indexOf('\n')) >= 0;) {
        const e = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (e.type !== 'heartbeat') events.push(e);
      }
    });
    await request(base, 'PUT', reg('feed', 'one'), JSON.stringify({ pid: me.pid }));
    await request(base, 'PUT', reg('other', 'x'), JSON.stringify({ pid: me.pid }));
    await request(base, 'DELETE', reg('feed', 'one'));
    await waitFor(() => events.length >= 2, 5000, 'two feed events');
    expect(events.map((e) => [e.type, e.key])).to.deep.equal([
      ['put', 'one'],
      ['delete', 'one'],
    ]);
    expect(node.watchers).to.equal(1);
    req.destroy();
    await waitFor(() => node.watchers === 0, 5000, 'the watcher to go');
    // Resume from the first event's revision: only the later one comes back (SSE this time).
    const [first] = events;
    present(first, 'a first feed event');
    const sse = http.request(new URL(`/v1/watch?ns=feed&since=${first.revision}`, base), {
      agent: false,
      headers: { accept: 'text/event-stream' },
    });
    sse.end();
    const [sres] = (await once(sse, 'response')) as [http.IncomingMessage];
    expect(sres.headers['content-type']).to.equal('text/event-stream');
    let text = '';
    sres.on('data', (c) => (text += c));
    await waitFor(() => text.includes('\n\n'), 5000, 'an SSE event');
    expect(text).to.match(/^id: \d+\nevent: delete\ndata: \{.*"key":"one"/);
    sse.destroy();
  });

  it('health, stats, metrics, openapi, digest, count, namespaces, cleanup', async () => {
    const h = await request(base, 'GET', '/v1/health');
    expect(h.status).to.equal(200);
    expect(h.json.status).to.equal('healthy');
    expect(typeof h.json.nodeInfo.uptimeMs).to.equal('number');
    const s = await request(base, 'GET', '/v1/stats');
    expect(typeof s.json.uptimeMs).to.equal('number');
    expect(s.json.inFlight >= 1, 'counts the stats request itself').to.be.ok;
    expect(s.json.operations.register.count > 0).to.be.ok;
    const m = await request(base, 'GET', '/metrics');
    expect(m.headers['content-type']!).to.match(/^text\/plain/);
    expect(m.text).to.match(
      /^procreg_http_requests_total\{method="PUT",route="\/v1\/registrations\/:ns\/:key",status="201"\} \d+$/m,
    );
    expect(m.text).to.match(/^procreg_operations_total\{operation="register"\} \d+$/m);
    expect(m.text).to.match(/^procreg_registrations_alive \d+$/m);
    expect(m.text).to.match(/^procreg_health_status\{status="healthy"\} 1$/m);
    const o = await request(base, 'GET', '/v1/openapi.json');
    expect(o.json.openapi).to.equal('3.1.0');
    expect(o.json.paths['/v1/registrations/{ns}/{key}'].put).to.be.ok;
    expect(o.json.paths['/v1/watch'].get).to.be.ok;
    const d = await request(base, 'GET', '/v1/digest/default?buckets=4');
    expect(d.json.buckets).to.equal(4);
    expect(d.json.digests.length).to.equal(4);
    expect((await request(base, 'GET', '/v1/count?ns=default')).json.count > 0).to.be.ok;
    expect((await request(base, 'GET', '/v1/namespaces')).json.namespaces.includes('default')).to.be.ok;
    const c = await request(base, 'POST', '/v1/cleanup');
    expect(typeof c.json.removed).to.equal('number');
  });
});

describe('node: health turns 503 when unhealthy', () => {
  it('answers 503 with the report when most registrations are dead', async () => {
    const node = await startNode('memory:');
    try {
      const procs = await Promise.all(Array.from({ length: 4 }, () => spawnSleeper()));
      for (const [i, p] of procs.entries())
        await request(node.url, 'PUT', reg('h', `k${i}`), JSON.stringify({ pid: p.pid }));
      for (const p of procs.slice(0, 2)) await p.kill();
      const h = await request(node.url, 'GET', '/v1/health');
      expect(h.status).to.equal(503);
      expect(h.json.status).to.equal('unhealthy');
      expect(h.json.reasons.length > 0).to.be.ok;
    } finally {
      await node.close();
      await killAllSleepers();
    }
  });
});

describe('node: auth', () => {
  const token = 'test-token-0123456789abcdef';
  let node: RegistryNode;
  before(async () => {
    node = await startNode('memory:', { token });
  });
  after(async () => node.close());

  it('missing and wrong tokens: 401 JSON; the right one passes', async () => {
    const missing = await request(node.url, 'GET', '/v1/health');
    assertCleanError(missing, 401, 'UNAUTHORIZED');
    expect(missing.headers['www-authenticate']).to.equal('Bearer realm="procreg"');
    assertCleanError(
      await request(node.url, 'GET', '/v1/health', undefined, { authorization: 'Bearer nope' }),
      401,
      'UNAUTHORIZED',
    );
    assertCleanError(await request(node.url, 'GET', '/v1/health', undefined, { authorization: `Basic ${token}` }), 401);
    assertCleanError(await request(node.url, 'GET', '/metrics', undefined, { authorization: `Bearer ${token}x` }), 401);
    expect(
      (await request(node.url, 'GET', '/v1/health', undefined, { authorization: `Bearer ${token}` })).status,
    ).to.equal(200);
  });

  it('the remote backend: bad token → UnauthorizedError (exit 7); right token works', async () => {
    const bad = await ProcessRegistry.open({
      backend: node.url,
      backendOpts: { token: 'wrong-token-wrong-token' },
      cleanupInterval: 0,
    });
    const err = await bad.lookup('k').catch((e) => e);
    expect(err.code).to.equal('UNAUTHORIZED');
    expect(err.exitCode).to.equal(7);
    await bad.close();
    const good = await ProcessRegistry.open({ backend: node.url, backendOpts: { token }, cleanupInterval: 0 });
    expect(await good.lookup('k')).to.equal(undefined);
    await good.close();
  });

  it('refuses a non-loopback bind without a token', async () => {
    await expect(startNode('memory:', { host: '0.0.0.0' })).to.be.rejectedWith(/without a token/);
  });
});

describe('node: remote backend faults', () => {
  it('unreachable node → UnreachableError (exit 6)', async () => {
    const node = await startNode('memory:');
    const url = node.url;
    await node.close();
    const r = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    const err = await r.lookup('k').catch((e) => e);
    expect(err.code).to.equal('UNREACHABLE');
    expect(err.exitCode).to.equal(6);
    await r.close();
  });

  it('watch through the remote backend, and close drains', async () => {
    const node = await startNode('memory:');
    const r = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    const me = await spawnSleeper();
    try {
      const seen: string[] = [];
      const errors: Error[] = [];
      const stop = await r.backend.watch!(
        { namespace: 'w' },
        (e) => seen.push(`${e.type}:${e.key}`),
        (e) => errors.push(e),
      );
      await r.register('a', me.pid, {}, { namespace: 'w' });
      await r.unregister('a', { namespace: 'w' });
      await waitFor(() => seen.length === 2, 5000, 'two events');
      expect(seen).to.deep.equal(['put:a', 'delete:a']);
      stop();
      // A watch from a compacted revision is refused through onError (410), like the memory backend.
      const node2 = await startNode('memory:', { backendOpts: { feedRetention: 2 } });
      const r2 = await ProcessRegistry.open({ backend: node2.url, cleanupInterval: 0 });
      for (let i = 0; i < 5; i++) await r2.register(`k${i}`, me.pid, {}, { namespace: 'w' });
      const errs: Error[] = [];
      await r2.backend.watch!(
        { sinceRevision: 0 },
        () => undefined,
        (e) => errs.push(e),
      );
      expect(String(errs[0]?.message)).to.match(/compacted/);
      await r2.close();
      await node2.close();
    } finally {
      await r.close();
      await node.close();
      await killAllSleepers();
    }
  });
});

describe('node: the change feed of a backend without one (sqlite)', () => {
  it('requests, sweeps and namespace clears are on the feed, with revisions', async () => {
    const { tempDir } = await import('../support/tmp.js');
    const t = tempDir();
    const node = await startNode(`sqlite:${t.dir}/feed.db`);
    const r = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    try {
      const seen: Array<{ revision: number; what: string }> = [];
      const stop = await r.backend.watch!({ namespace: 'sq' }, (e) =>
        seen.push({ revision: e.revision, what: `${e.type}:${e.key}` }),
      );
      const [a, b] = await Promise.all([spawnSleeper(), spawnSleeper()]);
      await r.register('a', a.pid, {}, { namespace: 'sq' });
      await r.register('b', b.pid, {}, { namespace: 'sq' });
      await r.updateMetadata('b', { x: 1 }, { namespace: 'sq' });
      await a.kill();
      const sweep = await r.cleanup();
      expect(sweep.removed).to.equal(1);
      await r.backend.clearNamespace!('sq');
      await waitFor(() => seen.length === 5, 5000, 'five feed events');
      expect(seen.map((e) => e.what)).to.deep.equal(['put:a', 'put:b', 'put:b', 'delete:a', 'delete:b']);
      expect(
        seen.map((e) => e.revision),
        'revisions increase',
      ).to.deep.equal([...seen.map((e) => e.revision)].sort((x, y) => x - y));
      stop();
      // Resume after the second event: the last three come back.
      const [, second] = seen;
      present(second, 'a second feed event');
      const again: string[] = [];
      const stop2 = await r.backend.watch!({ namespace: 'sq', sinceRevision: second.revision }, (e) =>
        again.push(`${e.type}:${e.key}`),
      );
      await waitFor(() => again.length === 3, 5000, 'three replayed events');
      expect(again).to.deep.equal(['put:b', 'delete:a', 'delete:b']);
      stop2();
    } finally {
      await r.close();
      await node.close();
      await killAllSleepers();
      t.cleanup();
    }
  });
});

describe('node: periodic sweep and digests through the remote backend', () => {
  it('sweeps dead processes of its own node name every cleanupInterval, without any request', async () => {
    const node = await startNode('memory:', { cleanupInterval: 100 });
    const r = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    try {
      const [a, b] = await Promise.all([spawnSleeper(), spawnSleeper()]);
      await r.register('dies', a.pid, {}, { namespace: 'sweep' });
      await r.register('lives', b.pid, {}, { namespace: 'sweep' });
      await r.register('elsewhere', 999999, {}, { namespace: 'sweep', node: 'another-host' });
      await a.kill();
      // Raw backend count (dead included): only the node's own sweep can bring it down.
      await waitFor(
        async () => (await node.registry.backend.count('sweep')) === 2,
        10_000,
        'the periodic sweep to remove the dead entry',
      );
      expect(
        (await r.list({ namespace: 'sweep' })).items.map((e) => e.key),
        "other nodes' entries are left to their node",
      ).to.deep.equal(['elsewhere', 'lives']);
      expect(node.registry.sweepHistory().some((s) => s.removed === 1)).to.be.ok;
    } finally {
      await r.close();
      await node.close();
      await killAllSleepers();
    }
  });

  it('digest through the remote backend equals the digest of the same entries computed locally', async () => {
    const { BucketDigester } = await import('../../src/registry/digest.js');
    const node = await startNode('memory:');
    const r = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    try {
      const res = await r.bulkRegister(
        Array.from({ length: 50 }, (_, i) => ({
          key: `d/${i}`,
          pid: 10 + i,
          node: 'elsewhere',
          namespace: 'dig',
          meta: { i },
        })),
      );
      expect(res.every((x) => x.ok)).to.be.ok;
      const remote = await r.backend.digest!('dig', 8);
      const local = new BucketDigester(8);
      for await (const e of r.entries({ namespace: 'dig' })) local.add(e);
      expect(remote).to.deep.equal(local.result());
      expect(remote.counts.reduce((a, b) => a + b, 0)).to.equal(50);
    } finally {
      await r.close();
      await node.close();
    }
  });
});
