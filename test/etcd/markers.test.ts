/**
 * Process markers on etcd (`p/<node>/<pid>/<pidStart|->/<s|n>`): one key per process, not per
 * entry, which a node's sweep lists to find the processes it must judge. Real sleepers, killed.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, spawnSleepers } from '../support/processes.js';

const NODE = 'mk-node';

describe('etcd: process markers and sweeps (1 member)', function () {
  this.timeout(90_000);
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ members: 1 });
  });
  afterEach(killAllSleepers);
  after(async () => {
    await c?.stop();
  });

  const keys = (prefix: string): string[] =>
    spawnSync('etcdctl', ['--endpoints', c.endpoint(0), 'get', '--prefix', prefix, '--keys-only'], {
      encoding: 'utf8',
    })
      .stdout.split('\n')
      .filter(Boolean);
  const open = (root: string) => ProcessRegistry.open({ backend: c.url(root), nodeName: NODE, cleanupInterval: 0 });
  const pidStart = async (reg: ProcessRegistry, ns: string, key: string): Promise<string> =>
    String((await reg.backend.lookup(ns, key))?.pidStart ?? '-');

  it("one marker per process; a sweep removes a dead process's entries in every namespace and its marker, and nothing of a live one", async () => {
    const reg = await open('/sweep');
    try {
      const [a, b] = await spawnSleepers(2);
      await reg.register('a1', a.pid, {}, { namespace: 'x' });
      await reg.register('a2', a.pid, {}, { namespace: 'y' });
      await reg.register('a3', a.pid, { type: 'w' }, { namespace: 'x' });
      await reg.register('b1', b.pid, { type: 'w' }, { namespace: 'x' });
      const markerA = `/sweep/p/${NODE}/${a.pid}/${await pidStart(reg, 'x', 'a1')}/n`;
      const markerB = `/sweep/p/${NODE}/${b.pid}/${await pidStart(reg, 'x', 'b1')}/n`;
      expect(keys('/sweep/p/').sort()).to.deep.equal([markerA, markerB].sort());
      expect((await reg.healthCheck()).dead).to.equal(0);

      await a.kill();
      const h = await reg.healthCheck();
      expect(h.dead, "health counts the dead process's entries").to.equal(3);
      expect(h.alive).to.equal(1);
      const swept = await reg.cleanup();
      expect(swept.checked, 'two processes judged').to.equal(2);
      expect(swept.removed).to.equal(3);
      expect(keys('/sweep/p/')).to.deep.equal([markerB]);
      expect(keys('/sweep/r/')).to.deep.equal(['/sweep/r/x/b1']);
      expect(keys('/sweep/i/'), 'the index key of a3 went with it').to.deep.equal(['/sweep/i/x/type/w/b1']);
      expect(keys('/sweep/g/'), 'the sweep generation moved').to.deep.equal([`/sweep/g/${NODE}`]);
      expect((await reg.cleanup()).removed).to.equal(0);
    } finally {
      await reg.close();
    }
  });

  it("every write of a registration brings back a marker a sweep removed; unregister leaves it to the process's death", async () => {
    const reg = await open('/rewrite');
    try {
      const [b] = await spawnSleepers(1);
      await reg.register('b1', b.pid, {}, { namespace: 'x' });
      await reg.register('b2', b.pid, {}, { namespace: 'x' });
      const marker = `/rewrite/p/${NODE}/${b.pid}/${await pidStart(reg, 'x', 'b1')}/n`;
      expect(keys('/rewrite/p/')).to.deep.equal([marker]);
      spawnSync('etcdctl', ['--endpoints', c.endpoint(0), 'del', marker]);
      expect(keys('/rewrite/p/')).to.deep.equal([]);
      await reg.updateMetadata('b1', { v: 2 }, { namespace: 'x' });
      expect(keys('/rewrite/p/'), 'meta set recreated it').to.deep.equal([marker]);
      await reg.unregister('b1', { namespace: 'x' });
      await reg.unregister('b2', { namespace: 'x' });
      expect(keys('/rewrite/p/'), 'kept until the process dies').to.deep.equal([marker]);
      await b.kill();
      await reg.cleanup();
      expect(keys('/rewrite/p/')).to.deep.equal([]);
    } finally {
      await reg.close();
    }
  });

  it("bulk writes skip markers they already wrote only while the node's sweep generation holds", async () => {
    const writer = await open('/bulk');
    const sweeper = await open('/bulk');
    try {
      const [b] = await spawnSleepers(1);
      const items = (from: number) =>
        Array.from({ length: 150 }, (_, i) => ({ key: `k${from + i}`, pid: b.pid, namespace: 'x' }));
      expect((await writer.bulkRegister(items(0))).every((r) => r.ok)).to.be.ok;
      expect(
        (await writer.bulkRegister(items(150))).every((r) => r.ok),
        'the writer now knows the marker',
      ).to.be.ok;
      const start = await pidStart(writer, 'x', 'k0');
      const marker = `/bulk/p/${NODE}/${b.pid}/${start}/n`;
      expect(keys('/bulk/p/')).to.deep.equal([marker]);
      // Another process's sweep removes the process's entries and marker (as when it had died).
      expect(
        await sweeper.backend.removeProcesses!(NODE, [{ pid: b.pid, pidStart: start === '-' ? null : Number(start) }]),
      ).to.equal(300);
      expect(keys('/bulk/p/')).to.deep.equal([]);
      // The writer's cache is stale: its next bulk write sees the generation moved and writes the marker.
      const res = await writer.bulkRegister(items(300));
      expect(res.every((r) => r.ok)).to.be.ok;
      expect(await writer.count({ namespace: 'x' })).to.equal(150);
      expect(keys('/bulk/p/'), 'the marker is back, so a sweep finds these entries').to.deep.equal([marker]);
      await b.kill();
      expect((await sweeper.cleanup()).removed).to.equal(150);
      expect(keys('/bulk/r/')).to.deep.equal([]);
    } finally {
      await writer.close();
      await sweeper.close();
    }
  });
});
