/**
 * Node failover (the seed's Horde behaviour): a long-lived process holding session leases is
 * SIGKILLed; its registrations vanish from etcd within TTL + 2 s while another live process's
 * leased registrations and plain (one-shot CLI style) registrations stay.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { spawnServe } from '../support/node.js';

const serviceJs = fileURLToPath(new URL('../../src/registry/service.js', import.meta.url));
const TTL = 3;

/** A child node process: opens the registry on etcd with session leases, registers, says "ready". */
const CHILD = `
import { ProcessRegistry } from ${JSON.stringify(serviceJs)};
const [url, node, count] = process.argv.slice(2);
const reg = await ProcessRegistry.open({ backend: url, nodeName: node, backendOpts: { leaseTtl: ${TTL} }, cleanupInterval: 1000 });
for (let i = 0; i < Number(count); i++) await reg.register(node + '-' + i, process.pid, { type: 'worker', i }, { namespace: 'failover' });
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

async function startNode(script: string, url: string, node: string, count: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script, url, node, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await waitFor(() => out.includes('ready') || child.exitCode !== null, 30_000, `node ${node} to register`);
  expect(child.exitCode, `node ${node} exited early`).to.equal(null);
  return child;
}

describe('etcd: a registering node dies', function () {
  this.timeout(120_000);
  let c: EtcdCluster;
  const tmp = tempDir();
  const children: ChildProcess[] = [];
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    for (const ch of children) {
      if (ch.exitCode === null && ch.signalCode === null) {
        const e = once(ch, 'exit');
        ch.kill('SIGKILL');
        await e;
      }
    }
    await killAllSleepers();
    await c?.stop();
    tmp.cleanup();
  });

  it(`SIGKILL of a node with session leases: its registrations disappear within TTL + 2 s, others stay`, async () => {
    const url = c.url('/failover');
    const script = join(tmp.dir, 'node.mjs');
    writeFileSync(script, CHILD);
    const [doomed, survivor] = await Promise.all([
      startNode(script, url, 'node-doomed', 20),
      startNode(script, url, 'node-survivor', 5),
    ]);
    children.push(doomed, survivor);

    // A one-shot style writer (plain keys, no lease) on a third node name.
    const cli = await ProcessRegistry.open({ backend: url, nodeName: 'node-cli', cleanupInterval: 0 });
    const sleeper = await spawnSleeper();
    await cli.register('plain', sleeper.pid, {}, { namespace: 'failover', node: 'node-cli' });
    await cli.close(); // closing a lease-less registry revokes nothing
    const reg = await ProcessRegistry.open({ backend: url, nodeName: 'observer', cleanupInterval: 0 });
    try {
      const raw = (k: string) => reg.backend.lookup('failover', k); // raw store: no liveness judgement
      expect(await reg.backend.count('failover')).to.equal(26);
      expect(await raw('node-doomed-0')).to.be.ok;

      const exited = once(doomed, 'exit');
      doomed.kill('SIGKILL');
      await exited;
      const t0 = Date.now();
      await waitFor(
        async () => (await raw('node-doomed-0')) === undefined && (await raw('node-doomed-19')) === undefined,
        (TTL + 2) * 1000,
        "the dead node's registrations to expire",
      );
      const took = Date.now() - t0;
      expect(took <= (TTL + 2) * 1000, `expired after ${took} ms`).to.be.ok;
      // Everything of the dead node is gone (entries, index and process keys); the rest stays.
      expect(await reg.backend.count('failover')).to.equal(6);
      expect(await reg.backend.processes!('node-doomed')).to.deep.equal([]);
      for (let i = 0; i < 5; i++) expect((await raw(`node-survivor-${i}`))?.node).to.equal('node-survivor');
      expect((await raw('plain'))?.pid).to.equal(sleeper.pid);
      const byIndex = await reg.list({ namespace: 'failover', where: [['type', 'worker']] });
      expect(byIndex.items.map((e) => e.key)).to.deep.equal(Array.from({ length: 5 }, (_, i) => `node-survivor-${i}`));
    } finally {
      await reg.close();
    }
  });

  it('the lease pool caps keys per lease (etcd issue 15993); close() revokes, so the registrations go with the process', async () => {
    const url = c.url('/pool');
    const reg = await ProcessRegistry.open({
      backend: url,
      nodeName: 'pool-node',
      backendOpts: { lease: 'session', keysPerLease: 5, leaseTtl: 30 },
      cleanupInterval: 0,
    });
    const observer = await ProcessRegistry.open({ backend: url, nodeName: 'observer', cleanupInterval: 0 });
    try {
      // A registration with no indexed metadata attaches its entry, plus the process marker the
      // first time (room for both is reserved, the marker's given back when it existed): the first
      // lease holds the marker and 3 entries, the next ones 4 entries each: 19 → 5 leases.
      for (let i = 0; i < 19; i++) await reg.register(`k${i}`, process.pid, {}, { node: 'pool-node' });
      const h = await reg.healthCheck();
      expect(h.sessionLeases).to.equal(5);
      expect(h.leaseMode).to.equal('session');
      expect((h.leases as number) >= 5).to.be.ok;
      // Unregistering frees room on a lease: the next registration needs no new lease.
      await reg.unregister('k0');
      await reg.register('k19', process.pid, {}, { node: 'pool-node' });
      expect((await reg.healthCheck()).sessionLeases).to.equal(5);
      await reg.close();
      expect(await observer.backend.count('default'), 'closing revoked the leases and their keys at once').to.equal(0);
      expect(await observer.backend.processes!('pool-node')).to.deep.equal([]);
    } finally {
      await reg.close();
      await observer.close();
    }
  });

  it("SIGKILL of a `registry serve` node on etcd: what it registered disappears within TTL + 2 s, other nodes' entries stay", async () => {
    const url = c.url('/serve-failover');
    const config = join(tmp.dir, 'registry.config.json');
    writeFileSync(config, JSON.stringify({ profiles: { cluster: { backend: url, backendOpts: { leaseTtl: TTL } } } }));
    const serve = await spawnServe(['--config', config, '--profile', 'cluster', '--node-name', 'node-serve']);
    children.push(serve.child);
    const sleeper = await spawnSleeper();
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${serve.url}/v1/registrations/default/svc-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pid: sleeper.pid, meta: { type: 'api' } }),
      });
      expect(res.status, await res.text()).to.equal(201);
    }
    const other = await ProcessRegistry.open({ backend: url, nodeName: 'node-other', cleanupInterval: 0 });
    try {
      await other.register('other', sleeper.pid, {}, { node: 'node-other' });
      expect((await other.backend.lookup('default', 'svc-0'))?.node).to.equal('node-serve');
      const exited = serve.exited;
      serve.child.kill('SIGKILL');
      await exited;
      const t0 = Date.now();
      await waitFor(
        async () => (await other.backend.count('default')) === 1,
        (TTL + 2) * 1000,
        "the serve node's registrations to expire",
      );
      expect(Date.now() - t0 <= (TTL + 2) * 1000).to.be.ok;
      expect((await other.backend.lookup('default', 'other'))?.node).to.equal('node-other');
      expect((await other.list({ where: [['type', 'api']] })).items, 'index keys went with the lease').to.deep.equal(
        [],
      );
    } finally {
      await other.close();
    }
  });
});
