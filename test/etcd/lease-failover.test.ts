/**
 * Node failover (the seed's Horde behaviour): a long-lived process holding session leases is
 * SIGKILLed; its registrations vanish from etcd within TTL + 2 s while another live process's
 * leased registrations and plain (one-shot CLI style) registrations stay.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
  child.stdout!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('ready') || child.exitCode !== null, 30_000, `node ${node} to register`);
  assert.equal(child.exitCode, null, `node ${node} exited early`);
  return child;
}

describe('etcd: a registering node dies', { timeout: 120_000 }, () => {
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
    const [doomed, survivor] = await Promise.all([startNode(script, url, 'node-doomed', 20), startNode(script, url, 'node-survivor', 5)]);
    children.push(doomed, survivor);

    // A one-shot style writer (plain keys, no lease) on a third node name.
    const cli = await ProcessRegistry.open({ backend: url, nodeName: 'node-cli', cleanupInterval: 0 });
    const sleeper = await spawnSleeper();
    await cli.register('plain', sleeper.pid, {}, { namespace: 'failover', node: 'node-cli' });
    await cli.close(); // closing a lease-less registry revokes nothing
    const reg = await ProcessRegistry.open({ backend: url, nodeName: 'observer', cleanupInterval: 0 });
    try {
      const raw = (k: string) => reg.backend.lookup('failover', k); // raw store: no liveness judgement
      assert.equal(await reg.backend.count('failover'), 26);
      assert.ok(await raw('node-doomed-0'));

      const exited = once(doomed, 'exit');
      doomed.kill('SIGKILL');
      await exited;
      const t0 = Date.now();
      await waitFor(async () => (await raw('node-doomed-0')) === undefined && (await raw('node-doomed-19')) === undefined, (TTL + 2) * 1000, 'the dead node\'s registrations to expire');
      const took = Date.now() - t0;
      assert.ok(took <= (TTL + 2) * 1000, `expired after ${took} ms`);
      // Everything of the dead node is gone (entries, index and process keys); the rest stays.
      assert.equal(await reg.backend.count('failover'), 6);
      assert.deepEqual(await reg.backend.processes!('node-doomed'), []);
      for (let i = 0; i < 5; i++) assert.equal((await raw(`node-survivor-${i}`))?.node, 'node-survivor');
      assert.equal((await raw('plain'))?.pid, sleeper.pid);
      const byIndex = await reg.list({ namespace: 'failover', where: [['type', 'worker']] });
      assert.deepEqual(byIndex.items.map((e) => e.key), Array.from({ length: 5 }, (_, i) => `node-survivor-${i}`));
    } finally {
      await reg.close();
    }
  });

  it('the lease pool caps keys per lease (etcd issue 15993); close() revokes, so the registrations go with the process', async () => {
    const url = c.url('/pool');
    const reg = await ProcessRegistry.open({ backend: url, nodeName: 'pool-node', backendOpts: { lease: 'session', keysPerLease: 5, leaseTtl: 30 }, cleanupInterval: 0 });
    const observer = await ProcessRegistry.open({ backend: url, nodeName: 'observer', cleanupInterval: 0 });
    try {
      // A registration with no indexed metadata attaches its entry, plus the process marker the
      // first time (room for both is reserved, the marker's given back when it existed): the first
      // lease holds the marker and 3 entries, the next ones 4 entries each: 19 → 5 leases.
      for (let i = 0; i < 19; i++) await reg.register(`k${i}`, process.pid, {}, { node: 'pool-node' });
      const h = await reg.healthCheck();
      assert.equal(h.sessionLeases, 5);
      assert.equal(h.leaseMode, 'session');
      assert.ok((h.leases as number) >= 5);
      // Unregistering frees room on a lease: the next registration needs no new lease.
      await reg.unregister('k0');
      await reg.register('k19', process.pid, {}, { node: 'pool-node' });
      assert.equal((await reg.healthCheck()).sessionLeases, 5);
      await reg.close();
      assert.equal(await observer.backend.count('default'), 0, 'closing revoked the leases and their keys at once');
      assert.deepEqual(await observer.backend.processes!('pool-node'), []);
    } finally {
      await reg.close();
      await observer.close();
    }
  });

  it('SIGKILL of a `registry serve` node on etcd: what it registered disappears within TTL + 2 s, other nodes\' entries stay', async () => {
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
      assert.equal(res.status, 201, await res.text());
    }
    const other = await ProcessRegistry.open({ backend: url, nodeName: 'node-other', cleanupInterval: 0 });
    try {
      await other.register('other', sleeper.pid, {}, { node: 'node-other' });
      assert.equal((await other.backend.lookup('default', 'svc-0'))?.node, 'node-serve');
      const exited = serve.exited;
      serve.child.kill('SIGKILL');
      await exited;
      const t0 = Date.now();
      await waitFor(async () => (await other.backend.count('default')) === 1, (TTL + 2) * 1000, 'the serve node\'s registrations to expire');
      assert.ok(Date.now() - t0 <= (TTL + 2) * 1000);
      assert.equal((await other.backend.lookup('default', 'other'))?.node, 'node-other');
      assert.deepEqual((await other.list({ where: [['type', 'api']] })).items, [], 'index keys went with the lease');
    } finally {
      await other.close();
    }
  });
});
