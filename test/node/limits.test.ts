/**
 * What one client can make a node hold (issue 12 item 17), against a real `registry serve` child
 * on port 0 with real HTTP: concurrent bulk bodies and watch streams are capped (503 + Retry-After,
 * before a body is read), a stalled watcher is cut at --watch-buffer, the limits show in /v1/stats.
 * And the refusals of item 14 (D's part): a bad --listen address, a switch to an unusable path,
 * `watch -b memory:`.
 */
import { expect } from 'chai';
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox, type Sandbox } from '../support/cli.js';
import { spawnServe, type ServeProcess } from '../support/node.js';
import { waitFor } from '../support/processes.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
}

function request(base: string, method: string, path: string, body?: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, base),
      { method, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode!, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Open a watch stream; resolves with the response once the status line arrived. */
function openWatch(base: string): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL('/v1/watch', base), { agent: false }, (res) => resolve({ req, res }));
    req.on('error', reject);
  });
}

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('node limits: bulk bodies, watchers, stalled readers (issue 12 item 17)', function () {
  this.timeout(120_000);
  let sb: Sandbox;
  let serve: ServeProcess;
  const stats = async () => (await request(serve.url, 'GET', '/v1/stats')).json;
  before(async () => {
    sb = sandbox();
    serve = await spawnServe(
      ['-b', 'memory:', '--log-level', 'silent', '--max-bulk', '1', '--max-watchers', '3', '--watch-buffer', '65536'],
      sb.env,
    );
  });
  after(async () => {
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
    await serve.exited;
    sb.cleanup();
  });

  it('/v1/stats shows the limits the node was started with', async () => {
    const s = await stats();
    expect(s.limits).to.deep.include({ maxBulk: 1, maxWatchers: 3, watchBufferBytes: 65536 });
    expect(s.limits.bodyBytes).to.equal(1024 * 1024);
    expect(s.limits.bulkBodyBytes).to.equal(64 * 1024 * 1024);
    expect(s.bulkInFlight).to.equal(0);
  });

  it('a bulk request beyond --max-bulk is answered 503 + Retry-After before its body is read; the slot frees', async () => {
    const body = JSON.stringify({
      entries: Array.from({ length: 2000 }, (_, i) => ({ key: `b${i}`, pid: 4242, node: 'far', meta: { i } })),
    });
    // The first body arrives slowly: half now, the rest once the second request was refused.
    let slow: () => void = () => {};
    const first = new Promise<Res>((resolve, reject) => {
      const req = http.request(
        new URL('/v1/bulk', serve.url),
        {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 1000));
      slow = () => req.end(body.slice(1000));
    });
    await waitFor(async () => (await stats()).bulkInFlight === 1, 10_000, 'the first bulk request to be taken');
    const second = await request(serve.url, 'POST', '/v1/bulk', { entries: [{ key: 'x', pid: 4242, node: 'far' }] });
    expect(second.status).to.equal(503);
    expect(second.headers['retry-after']).to.equal('1');
    expect(second.json.code).to.equal('BUSY');
    expect(second.json.message).to.match(/--max-bulk/);
    slow();
    const r = await first;
    expect(r.status).to.equal(200);
    expect(r.json.results).to.have.length(2000);
    await waitFor(async () => (await stats()).bulkInFlight === 0, 10_000, 'the slot to free');
    const third = await request(serve.url, 'POST', '/v1/bulk', { entries: [{ key: 'x', pid: 4242, node: 'far' }] });
    expect(third.status).to.equal(200);
  });

  it('a watch stream beyond --max-watchers is answered 503 + Retry-After (CLI: exit 6, "busy"); closing one frees a slot', async () => {
    const open = await Promise.all([openWatch(serve.url), openWatch(serve.url), openWatch(serve.url)]);
    for (const w of open) expect(w.res.statusCode).to.equal(200);
    const extra = await request(serve.url, 'GET', '/v1/watch');
    expect(extra.status).to.equal(503);
    expect(extra.headers['retry-after']).to.equal('1');
    expect(extra.json).to.include({ code: 'BUSY' });
    const c = sb.run(['watch', '-b', serve.url, '--timeout', '1']);
    expect(c.code, c.stderr).to.equal(6);
    expect(c.stderr).to.match(/^registry: registry node .* is busy: .*--max-watchers/);
    open[0].req.destroy();
    await waitFor(async () => (await stats()).watchers === 2, 10_000, 'the closed stream to be dropped');
    const again = await openWatch(serve.url);
    expect(again.res.statusCode).to.equal(200);
    for (const w of [...open.slice(1), again]) w.req.destroy();
    await waitFor(async () => (await stats()).watchers === 0, 10_000, 'every stream to be dropped');
  });

  it('a watcher that stops reading is cut off at --watch-buffer; the node keeps serving', async () => {
    const stalled = await openWatch(serve.url);
    stalled.res.pause();
    const cut = new Promise<void>((resolve) => stalled.res.once('close', () => resolve()));
    await waitFor(async () => (await stats()).watchers === 1, 10_000, 'the stream to be served');
    const meta = { pad: 'x'.repeat(30_000) };
    // Events until kernel buffers and the 64 KiB allowance are full (at most ~60 MB of events).
    let sent = 0;
    let gone = false;
    void cut.then(() => (gone = true));
    while (!gone && sent < 2000) {
      const r = await request(serve.url, 'POST', '/v1/bulk', {
        entries: Array.from({ length: 100 }, (_, i) => ({ key: `w${sent + i}`, pid: 4242, node: 'far', meta })),
      });
      expect(r.status).to.equal(200);
      sent += 100;
      if ((await stats()).watchers === 0) break;
    }
    await waitFor(async () => (await stats()).watchers === 0, 10_000, 'the stalled stream to be cut off');
    expect((await request(serve.url, 'GET', '/v1/count')).status).to.equal(200);
    stalled.req.destroy();
  });
});

describe('refusals with their exit code and a one-line cause (issue 12 item 14, D)', function () {
  this.timeout(120_000);
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(() => sb.cleanup());

  it('serve --listen 127.999.1.1:0: exit 2 naming the address, not "internal error"', () => {
    const r = sb.run(['serve', '--listen', '127.999.1.1:0', '-b', 'memory:', '--log-level', 'silent']);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/^registry: cannot listen on 127\.999\.1\.1:0: .*\n$/);
    expect(r.stderr).to.not.match(/internal error/);
  });

  it('watch -b memory: exit 2: watch needs a shared store', () => {
    const r = sb.run(['watch', '-b', 'memory:', '--timeout', '5']);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/^registry: watch needs a shared store: .*\n$/);
  });

  it('/v1/admin/switch to an unusable path: 400 naming the path (CLI node switch: exit 2); the node stays up', async () => {
    const serve = await spawnServe(['-b', 'memory:', '--log-level', 'silent'], sb.env);
    try {
      const file = join(sb.dir, 'a-file');
      writeFileSync(file, 'not a folder');
      const target = `sqlite:${file}/registry.db`;
      const r = await request(serve.url, 'POST', '/v1/admin/switch', { backend: target });
      expect(r.status, JSON.stringify(r.json)).to.equal(400);
      expect(r.json.code).to.equal('INVALID_INPUT');
      expect(r.json.message).to.include(`${file}/registry.db`);
      const c = sb.run(['node', 'switch', '--to', target, '-b', serve.url]);
      expect(c.code, c.stderr).to.equal(2);
      expect(c.stderr).to.include(file);
      const errors = c.stderr.split('\n').filter((l) => l.startsWith('registry:'));
      expect(errors, c.stderr).to.have.length(1);
      expect(errors[0]).to.match(/^registry: cannot switch to sqlite:.*a-file\/registry\.db: /);
      expect((await request(serve.url, 'GET', '/v1/stats')).json.backend).to.equal('memory:');
    } finally {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
  });
});
