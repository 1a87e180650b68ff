/**
 * Health of the distributed parts, for real: a `registry serve` process that is stopped, and a
 * 3-member etcd cluster on loopback losing one member (degraded, quorum holds) then a second
 * (quorum lost: unreachable, exit 6).
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { HealthSummary } from '../../src/cli/health.js';
import { spawnSleepers, waitFor } from '../support/processes.js';
import { backendAt, healthAt, nodeSandbox } from './sandbox.js';
import { spawnServe } from '../support/node.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';

const NODE = 'health-remote-node';
const sb = nodeSandbox(NODE);

const health = (args: string[]) => {
  const r = sb.run(['health', ...args, '--json']);
  return { code: r.code, s: r.json<HealthSummary>() };
};

describe('health of a registry node', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  it('the node judges its processes (0 → 5); stopped, it is unreachable (6), also inside a report', async () => {
    const path = join(sb.dir, 'node.db');
    const serve = await spawnServe(['--backend', `sqlite:${path}`, '--cleanup-interval', '0'], { ...sb.env });
    try {
      const client = await ProcessRegistry.open({ backend: serve.url, cleanupInterval: 0, nodeName: NODE });
      const procs = await spawnSleepers(10);
      for (const [i, p] of procs.entries()) await client.register(`n-${i}`, p.pid);
      await client.close();
      let r = health(['-b', serve.url]);
      expect(r.code, JSON.stringify(r.s)).to.equal(0);
      expect(healthAt(r.s).registrations).to.equal(10);
      await procs[0].kill();
      await procs[1].kill(); // 20 %
      r = health(['-b', serve.url]);
      expect(r.code).to.equal(5);
      expect(backendAt(r.s).status).to.equal('degraded');
      expect(healthAt(r.s).dead).to.equal(2);
      const both = sb.run(['report', '--backends', `${serve.url},sqlite:${path}`, '--json']);
      expect(
        both.json<HealthSummary>().backends.map((b) => b.status),
        'the node and its file agree',
      ).to.deep.equal(['degraded', 'degraded']);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    const down = health(['-b', serve.url]);
    expect(down.code, 'a stopped node is never exit 0').to.equal(6);
    expect(backendAt(down.s).status).to.equal('unreachable');
    expect(backendAt(down.s).reasons[0]).to.match(/cannot reach registry node/);
    const report = sb.run(['report', '--backends', `sqlite:${path},${serve.url}`, '--json']);
    expect(report.code, 'the worst of degraded (5) and unreachable (6)').to.equal(6);
  });
});

describe('health of an endpoint that accepts but never answers', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  it('is unreachable after --timeout (exit 6), not a hang', async () => {
    const silent = createServer(() => undefined); // holds every connection open, says nothing
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const t0 = Date.now();
      const r = await sb.start(['health', '-b', url, '--timeout', '700ms', '--json']).done;
      expect(r.code, r.stdout + r.stderr).to.equal(6);
      const s = r.json<HealthSummary>();
      expect(backendAt(s).status).to.equal('unreachable');
      expect(backendAt(s).reasons[0]).to.match(/did not answer within 700 ms|cannot reach|timed out/);
      expect(Date.now() - t0 < 20_000, 'it gave up instead of waiting forever').to.be.ok;
    } finally {
      silent.closeAllConnections?.();
      silent.close();
    }
    expect(sb.run(['health', '-b', url, '--timeout', '0s']).code, 'a zero timeout is a usage error').to.equal(2);
  });
});

describe('health of an etcd cluster', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('healthy → one member down: degraded (5, --fail-on unhealthy 0) → two down: quorum lost, unreachable (6)', async () => {
    const url = cluster.url('/health-test');
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, nodeName: NODE });
    const procs = await spawnSleepers(4);
    for (const [i, p] of procs.entries()) await reg.register(`e-${i}`, p.pid);
    await reg.close();

    let r = health(['-b', url]);
    expect(r.code, JSON.stringify(r.s.backends[0]?.reasons)).to.equal(0);
    const h = healthAt(r.s);
    expect(h.registrations).to.equal(4);
    expect((h.members as unknown[]).length).to.equal(3);
    expect(h.leader, 'a leader is named').to.be.ok;

    await cluster.killMember(2);
    await waitFor(() => (r = health(['-b', url])).code === 5, 60_000, 'degraded with one member down');
    expect(backendAt(r.s).status).to.equal('degraded');
    expect(backendAt(r.s).reasons.join('\n')).to.match(/members unreachable: .*quorum holds/);
    expect(sb.run(['health', '-b', url, '--fail-on', 'unhealthy']).code).to.equal(0);

    await cluster.killMember(1);
    await waitFor(
      () => (r = health(['-b', url, '--timeout', '15s'])).code === 6,
      60_000,
      'unreachable once quorum is lost',
    );
    expect(backendAt(r.s).status).to.equal('unreachable');
    expect(backendAt(r.s).reasons[0]).to.match(/lost quorum/);
  });
});
