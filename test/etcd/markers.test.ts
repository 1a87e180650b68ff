/**
 * Process markers on etcd (`p/<node>/<pid>/<pidStart|->/<s|n>`): one key per process, not per
 * entry, which a node's sweep lists to find the processes it must judge. Real sleepers, killed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, afterEach, before, describe, it } from 'node:test';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, spawnSleepers } from '../support/processes.js';

const NODE = 'mk-node';

describe('etcd: process markers and sweeps (1 member)', { timeout: 90_000 }, () => {
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ members: 1 });
  });
  afterEach(killAllSleepers);
  after(async () => {
    await c?.stop();
  });

  const keys = (prefix: string): string[] =>
    spawnSync('etcdctl', ['--endpoints', c.endpoints[0], 'get', '--prefix', prefix, '--keys-only'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const open = (root: string) => ProcessRegistry.open({ backend: c.url(root), nodeName: NODE, cleanupInterval: 0 });
  const pidStart = async (reg: ProcessRegistry, ns: string, key: string): Promise<string> => String((await reg.backend.lookup(ns, key))?.pidStart ?? '-');

  it('one marker per process; a sweep removes a dead process\'s entries in every namespace and its marker, and nothing of a live one', async () => {
    const reg = await open('/sweep');
    try {
      const [a, b] = await spawnSleepers(2);
      await reg.register('a1', a.pid, {}, { namespace: 'x' });
      await reg.register('a2', a.pid, {}, { namespace: 'y' });
      await reg.register('a3', a.pid, { type: 'w' }, { namespace: 'x' });
      await reg.register('b1', b.pid, { type: 'w' }, { namespace: 'x' });
      const markerA = `/sweep/p/${NODE}/${a.pid}/${await pidStart(reg, 'x', 'a1')}/n`;
      const markerB = `/sweep/p/${NODE}/${b.pid}/${await pidStart(reg, 'x', 'b1')}/n`;
      assert.deepEqual(keys('/sweep/p/').sort(), [markerA, markerB].sort());
      assert.equal((await reg.healthCheck()).dead, 0);

      await a.kill();
      const h = await reg.healthCheck();
      assert.equal(h.dead, 3, 'health counts the dead process\'s entries');
      assert.equal(h.alive, 1);
      const swept = await reg.cleanup();
      assert.equal(swept.checked, 2, 'two processes judged');
      assert.equal(swept.removed, 3);
      assert.deepEqual(keys('/sweep/p/'), [markerB]);
      assert.deepEqual(keys('/sweep/r/'), ['/sweep/r/x/b1']);
      assert.deepEqual(keys('/sweep/i/'), ['/sweep/i/x/type/w/b1'], 'the index key of a3 went with it');
      assert.deepEqual(keys('/sweep/g/'), [`/sweep/g/${NODE}`], 'the sweep generation moved');
      assert.equal((await reg.cleanup()).removed, 0);
    } finally {
      await reg.close();
    }
  });

  it('every write of a registration brings back a marker a sweep removed; unregister leaves it to the process\'s death', async () => {
    const reg = await open('/rewrite');
    try {
      const [b] = await spawnSleepers(1);
      await reg.register('b1', b.pid, {}, { namespace: 'x' });
      await reg.register('b2', b.pid, {}, { namespace: 'x' });
      const marker = `/rewrite/p/${NODE}/${b.pid}/${await pidStart(reg, 'x', 'b1')}/n`;
      assert.deepEqual(keys('/rewrite/p/'), [marker]);
      spawnSync('etcdctl', ['--endpoints', c.endpoints[0], 'del', marker]);
      assert.deepEqual(keys('/rewrite/p/'), []);
      await reg.updateMetadata('b1', { v: 2 }, { namespace: 'x' });
      assert.deepEqual(keys('/rewrite/p/'), [marker], 'meta set recreated it');
      await reg.unregister('b1', { namespace: 'x' });
      await reg.unregister('b2', { namespace: 'x' });
      assert.deepEqual(keys('/rewrite/p/'), [marker], 'kept until the process dies');
      await b.kill();
      await reg.cleanup();
      assert.deepEqual(keys('/rewrite/p/'), []);
    } finally {
      await reg.close();
    }
  });

  it('bulk writes skip markers they already wrote only while the node\'s sweep generation holds', async () => {
    const writer = await open('/bulk');
    const sweeper = await open('/bulk');
    try {
      const [b] = await spawnSleepers(1);
      const items = (from: number) => Array.from({ length: 150 }, (_, i) => ({ key: `k${from + i}`, pid: b.pid, namespace: 'x' }));
      assert.ok((await writer.bulkRegister(items(0))).every((r) => r.ok));
      assert.ok((await writer.bulkRegister(items(150))).every((r) => r.ok), 'the writer now knows the marker');
      const start = await pidStart(writer, 'x', 'k0');
      const marker = `/bulk/p/${NODE}/${b.pid}/${start}/n`;
      assert.deepEqual(keys('/bulk/p/'), [marker]);
      // Another process's sweep removes the process's entries and marker (as when it had died).
      assert.equal(await sweeper.backend.removeProcesses!(NODE, [{ pid: b.pid, pidStart: start === '-' ? null : Number(start) }]), 300);
      assert.deepEqual(keys('/bulk/p/'), []);
      // The writer's cache is stale: its next bulk write sees the generation moved and writes the marker.
      const res = await writer.bulkRegister(items(300));
      assert.ok(res.every((r) => r.ok));
      assert.equal(await writer.count({ namespace: 'x' }), 150);
      assert.deepEqual(keys('/bulk/p/'), [marker], 'the marker is back, so a sweep finds these entries');
      await b.kill();
      assert.equal((await sweeper.cleanup()).removed, 150);
      assert.deepEqual(keys('/bulk/r/'), []);
    } finally {
      await writer.close();
      await sweeper.close();
    }
  });
});
