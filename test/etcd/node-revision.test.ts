/**
 * A node on etcd shows its feed revision as a number: `nodeInfo().revision` (GET /v1/stats,
 * GET /v1/health → `registry node status`, `registry health`), the watch stream's `x-revision`
 * header, its heartbeat lines and the `procreg_feed_revision` gauge. etcd answers the revision
 * with a round trip (a Promise), which these places used to read synchronously and drop — for a
 * node started on etcd and for one switched to etcd. Real `registry serve` processes and an
 * in-process node on a real 3-member cluster.
 */
import { expect } from 'chai';
import http from 'node:http';
import { join } from 'node:path';
import { type RegistryNode } from '../../src/node/server.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { spawnServe, startNode, type ServeProcess } from '../support/node.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';

interface Watched {
  status: number;
  headers: http.IncomingHttpHeaders;
  lines: Array<Record<string, unknown>>;
  stop(): void;
}

/** Open GET /v1/watch on `url` and collect its NDJSON lines. */
function openWatch(url: string): Promise<Watched> {
  return new Promise((resolve, reject) => {
    const lines: Array<Record<string, unknown>> = [];
    const req = http.get(`${url}/v1/watch`, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        }
      });
      res.on('error', () => undefined);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, lines, stop: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

/** What a node answers at `path` (JSON). */
async function getJson(url: string, path: string): Promise<Record<string, unknown>> {
  const r = await fetch(`${url}${path}`);
  return (await r.json()) as Record<string, unknown>;
}

/** The header, nodeInfo (stats and health) and the gauge all carry the same kind of value: a number. */
async function expectNumericRevision(url: string): Promise<number> {
  const w = await openWatch(url);
  try {
    expect(w.status).to.equal(200);
    expect(w.headers['x-revision'], 'x-revision header').to.match(/^\d+$/);
    const header = Number(w.headers['x-revision']);
    expect(header).to.be.greaterThan(0);
    const stats = await getJson(url, '/v1/stats');
    expect(stats.revision, 'GET /v1/stats revision').to.be.a('number');
    expect(stats.revision).to.be.at.least(header);
    const health = await getJson(url, '/v1/health');
    const info = health.nodeInfo as Record<string, unknown>;
    expect(info.revision, 'GET /v1/health nodeInfo.revision').to.be.a('number');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const gauge = /^procreg_feed_revision (\d+)$/m.exec(metrics);
    expect(gauge, 'procreg_feed_revision sample').to.not.equal(null);
    expect(Number(gauge![1])).to.be.at.least(header);
    return header;
  } finally {
    w.stop();
  }
}

describe('etcd: a node reports its feed revision as a number', function () {
  this.timeout(180_000);
  let c: EtcdCluster;
  let sb: Sandbox;
  const serves: ServeProcess[] = [];
  const nodes: RegistryNode[] = [];
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
    sb = sandbox();
  });
  after(async () => {
    for (const n of nodes) await n.close().catch(() => undefined);
    for (const s of serves) if (s.child.exitCode === null) s.child.kill('SIGTERM');
    await Promise.all(serves.map((s) => s.exited.catch(() => undefined)));
    await killAllSleepers();
    await c?.stop();
    sb?.cleanup();
  });

  it('a registry serve node started on etcd: x-revision, node status, health and the gauge are numbers', async () => {
    const node = await spawnServe(['-b', c.url('/rev-serve')], sb.env);
    serves.push(node);
    const s = await spawnSleeper();
    const reg = sb.run(['register', 'web-1', '--pid', String(s.pid), '-b', node.url]);
    expect(reg.code, reg.stderr).to.equal(0);
    const header = await expectNumericRevision(node.url);

    const status = sb.run(['node', 'status', '-b', node.url, '--json']);
    expect(status.code, status.stderr).to.equal(0);
    const st = status.json<{ revision: unknown; health: { nodeInfo?: { revision?: unknown } } }>();
    expect(st.revision, 'node status --json revision').to.be.a('number');
    expect(st.revision).to.be.at.least(header);
    const text = sb.run(['node', 'status', '-b', node.url]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/feed revision:\s+\d+/);
    expect(text.stdout).to.not.match(/feed revision:\s+-/);

    const health = sb.run(['health', '-b', node.url, '--json']);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    const hj = health.json<{ backends: Array<{ health: { nodeInfo: { revision?: unknown } } }> }>();
    expect(hj.backends[0]?.health.nodeInfo.revision, 'health --json nodeInfo.revision').to.be.a('number');
    const htext = sb.run(['health', '-b', node.url]);
    expect(htext.code, htext.stdout + htext.stderr).to.equal(0);
    expect(htext.stdout).to.match(/node info:[\s\S]*\n {2}revision:\s+\d+\n/);
  });

  it('heartbeat lines carry the revision as a number', async () => {
    const node = await startNode(c.url('/rev-beat'), { heartbeatMs: 200 });
    nodes.push(node);
    const w = await openWatch(node.url);
    try {
      await waitFor(() => w.lines.some((l) => l.type === 'heartbeat'), 20_000, 'a heartbeat line');
      const beat = w.lines.find((l) => l.type === 'heartbeat')!;
      expect(beat.revision, JSON.stringify(beat)).to.be.a('number');
      expect(beat.revision).to.be.at.least(Number(w.headers['x-revision']));
    } finally {
      w.stop();
    }
  });

  it('a node switched from SQLite to etcd: the same places show numbers', async () => {
    const node = await spawnServe(['-b', `sqlite:${join(sb.dir, 'before-switch.db')}`], sb.env);
    serves.push(node);
    const s = await spawnSleeper();
    expect(sb.run(['register', 'api-1', '--pid', String(s.pid), '-b', node.url]).code).to.equal(0);
    const sw = sb.run(['node', 'switch', '--to', c.url('/rev-switched'), '-b', node.url, '--json']);
    expect(sw.code, sw.stdout + sw.stderr).to.equal(0);
    await expectNumericRevision(node.url);
    const status = sb.run(['node', 'status', '-b', node.url]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/feed revision:\s+\d+/);
    expect(status.stdout).to.match(/backend:\s+etcd:/);
  });
});
