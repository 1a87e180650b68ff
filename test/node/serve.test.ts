/**
 * `registry serve` as a real child process: CLI commands through `--backend http://…`, exit codes
 * for an unreachable node (6) and a bad token (7), TLS, graceful SIGTERM drain, and SIGKILL in
 * the middle of a load followed by a restart on the same SQLite file.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { sandbox } from '../support/cli.js';
import { spawnServe, type ServeProcess } from '../support/node.js';
import { tempDir } from '../support/tmp.js';

async function stop(p: ServeProcess, sig: NodeJS.Signals = 'SIGTERM') {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(sig);
  return p.exited;
}

/** A port nothing listens on: bind 0, release. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

const t = tempDir();
const sb = sandbox();
/** `registry ARGS…` asynchronously, in a sandbox of its own XDG folders (CI set: no prompts). */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => sb.start(args, { env: { CI: '1', ...env } }).done;

describe('registry serve: the CLI through a node', function () {
  this.timeout(120_000);
  after(async () => {
    await killAllSleepers();
    t.cleanup();
    sb.cleanup();
  });

  it('every command works unchanged with --backend http://…', async () => {
    const srv = await spawnServe(['-b', `sqlite:${join(t.dir, 'cli.db')}`, '--log-level', 'warn']);
    const p = await spawnSleeper();
    try {
      const b = ['-b', srv.url];
      const reg = await cli(['register', 'web/1', '--pid', String(p.pid), '--meta', 'role=web', ...b]);
      expect(reg.code, reg.stderr).to.equal(0);
      const look = await cli(['lookup', 'web/1', '--json', ...b]);
      expect(look.code, look.stderr).to.equal(0);
      expect(JSON.parse(look.stdout).pid).to.equal(p.pid);
      const conflict = await cli(['register', 'web/1', '--pid', String(process.pid), ...b]);
      expect(conflict.code, conflict.stderr).to.equal(4);
      expect(conflict.stderr).to.match(/held by pid/);
      expect((await cli(['meta', 'set', 'web/1', '--merge', '--meta', 'port=8080', ...b])).code).to.equal(0);
      const list = await cli(['list', '--where', 'role=web', '--json', ...b]);
      expect(list.code, list.stderr).to.equal(0);
      expect(JSON.parse(list.stdout).items.map((e: { key: string; meta: object }) => [e.key, e.meta])).to.deep.equal([
        ['web/1', { role: 'web', port: 8080 }],
      ]);
      const count = await cli(['count', '--json', ...b]);
      expect(JSON.parse(count.stdout).total).to.equal(1);
      const status = await cli(['node', 'status', '--json', ...b]);
      expect(status.code, status.stderr).to.equal(0);
      const st = JSON.parse(status.stdout);
      expect(typeof st.uptimeMs).to.equal('number');
      expect(st.backend).to.match(/^sqlite:/);
      expect(st.namespaces.default).to.equal(1);
      // A backend without the `remote` capability is no node: refused by capability, exit 2.
      for (const [cmd, ...args] of [['status'], ['switch', '--to', 'memory:']] as const) {
        const local = await cli(['node', cmd, ...args, '-b', 'memory:']);
        expect(local.code, local.stderr).to.equal(2);
        expect(local.stderr).to.match(
          new RegExp(`^registry: node ${cmd} needs a node: pass --backend http://HOST:PORT`),
        );
      }
      const missing = await cli(['lookup', 'nope', ...b]);
      expect(missing.code).to.equal(3);
      const bad = await cli(['register', 'x', '--pid', 'abc', ...b]);
      expect(bad.code).to.equal(2);
      expect((await cli(['unregister', 'web/1', ...b])).code).to.equal(0);
      expect((await cli(['lookup', 'web/1', ...b])).code).to.equal(3);
    } finally {
      await stop(srv);
    }
  });

  it('unreachable node → exit 6; bad or missing token → exit 7', async () => {
    const port = await freePort();
    const down = await cli(['lookup', 'k', '-b', `http://127.0.0.1:${port}`]);
    expect(down.code, down.stderr).to.equal(6);
    expect(down.stderr).to.match(/cannot reach registry node/);
    expect(down.stderr).to.not.match(/\n\s+at /);
    const tokenFile = join(t.dir, 'token');
    writeFileSync(tokenFile, 'correct-horse-battery-staple\n');
    const srv = await spawnServe(['-b', 'memory:', '--token-file', tokenFile, '--log-level', 'warn']);
    try {
      const wrong = await cli(['count', '-b', srv.url], { REGISTRY_TOKEN: 'wrong-wrong-wrong-wrong' });
      expect(wrong.code, wrong.stderr).to.equal(7);
      const none = await cli(['list', '-b', srv.url], { REGISTRY_TOKEN: '' });
      expect(none.code, none.stderr).to.equal(7);
      const ok = await cli(['count', '-b', srv.url], { REGISTRY_TOKEN: 'correct-horse-battery-staple' });
      expect(ok.code, ok.stderr).to.equal(0);
    } finally {
      await stop(srv);
    }
  });

  it('refuses to listen off loopback without a token (exit 2, one line)', async () => {
    const r = await cli(['serve', '--listen', '0.0.0.0:0', '-b', 'memory:']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/without a token/);
    expect(r.stderr.trim().split('\n').length).to.equal(1);
  });

  it('serves https with --tls-cert/--tls-key', async () => {
    const cert = join(t.dir, 'cert.pem');
    const key = join(t.dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const srv = await spawnServe(['-b', 'memory:', '--tls-cert', cert, '--tls-key', key, '--log-level', 'warn']);
    try {
      expect(srv.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      const { readFileSync } = await import('node:fs');
      const reg = await ProcessRegistry.open({
        backend: srv.url,
        backendOpts: { ca: readFileSync(cert, 'utf8') },
        cleanupInterval: 0,
      });
      const p = await spawnSleeper();
      await reg.register('tls', p.pid);
      expect((await reg.lookup('tls'))?.pid).to.equal(p.pid);
      await reg.close();
      const untrusted = await ProcessRegistry.open({ backend: srv.url, cleanupInterval: 0 });
      expect((await untrusted.lookup('tls').catch((e) => e)).code, 'an unknown certificate is refused').to.equal(
        'UNREACHABLE',
      );
      await untrusted.close();
    } finally {
      await stop(srv);
    }
  });

  it('SIGTERM drains: an in-flight request completes, then the node exits 0', async () => {
    const srv = await spawnServe(['-b', 'memory:', '--log-level', 'info']);
    const p = await spawnSleeper();
    const body = JSON.stringify({ pid: p.pid });
    const u = new URL('/v1/registrations/default/drain', srv.url);
    const req = http.request(u, {
      method: 'PUT',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    });
    req.write(body.slice(0, 4));
    req.flushHeaders();
    // Wait until the node has the request in flight, then signal.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const stats = await fetch(new URL('/v1/stats', srv.url)).then((r) => r.json() as Promise<{ inFlight: number }>);
      if (stats.inFlight >= 2) break;
      if (Date.now() > deadline) throw new Error('the request never showed as in flight');
      await new Promise((r) => setTimeout(r, 20));
    }
    srv.child.kill('SIGTERM');
    // The node stops accepting but finishes the request it has.
    for (const deadline2 = Date.now() + 10_000; !srv.stderr().includes('draining');) {
      if (Date.now() > deadline2) throw new Error(`no drain log: ${srv.stderr()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    req.end(body.slice(4));
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    res.resume();
    expect(res.statusCode).to.equal(201);
    const [code, sig] = await srv.exited;
    expect(sig).to.equal(null);
    expect(code, srv.stderr()).to.equal(0);
    expect(srv.stderr()).to.match(/"msg":"closed"/);
  });

  it('SIGKILL mid-load: after a restart on the same SQLite file, every acknowledged registration is there', async () => {
    const db = `sqlite:${join(t.dir, 'crash.db')}`;
    const srv = await spawnServe(['-b', db, '--log-level', 'warn']);
    const p = await spawnSleeper();
    const acked: string[] = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let stopLoad = false;
    const put = (key: string) =>
      new Promise<boolean>((resolve) => {
        const body = JSON.stringify({ pid: p.pid, meta: { n: key } });
        const req = http.request(
          new URL(`/v1/registrations/crash/${encodeURIComponent(key)}`, srv.url),
          { method: 'PUT', agent, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode === 201));
            res.on('error', () => resolve(false));
          },
        );
        req.on('error', () => resolve(false));
        req.end(body);
      });
    let n = 0;
    const worker = async () => {
      while (!stopLoad) {
        const key = `k/${n++}`;
        if (await put(key)) acked.push(key);
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    while (acked.length < 300) await new Promise((r) => setTimeout(r, 10));
    srv.child.kill('SIGKILL');
    await srv.exited;
    stopLoad = true;
    await Promise.all(workers);
    agent.destroy();
    expect(acked.length >= 300).to.be.ok;
    const again = await spawnServe(['-b', db, '--log-level', 'warn']);
    try {
      const reg = await ProcessRegistry.open({ backend: again.url, cleanupInterval: 0 });
      const have = new Set<string>();
      for await (const e of reg.entries({ namespace: 'crash' })) have.add(e.key);
      const lost = acked.filter((k) => !have.has(k));
      expect(lost, `${lost.length} of ${acked.length} acknowledged registrations lost`).to.deep.equal([]);
      await reg.close();
    } finally {
      await stop(again);
    }
  });
});
