/**
 * Several nodes on one cluster: racing registrations (exactly one winner per key, losers told
 * the holder), read-your-writes across client instances on different members, the watch feed
 * (including compaction) and the watch-coherent lookup cache.
 */
import { expect } from 'chai';
import { present } from '../support/expect.js';
import { AlreadyRegisteredError, type ChangeEvent, type RegistryError } from '../../src/backends/contract.js';
import { LookupCache } from '../../src/registry/lookup-cache.js';
import type { EtcdBackendApi } from '../../src/backends/etcd.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, spawnSleeper, spawnSleepers, waitFor } from '../support/processes.js';

describe('etcd: several nodes', function () {
  this.timeout(120_000);
  let c: EtcdCluster;
  const open: ProcessRegistry[] = [];
  /** A registry talking to the given members only, as node `node`. */
  const node = async (node: string, prefix: string, members: number[], lease: 'session' | 'none' = 'none') => {
    const url = `etcd://${members.map((i) => c.endpoints[i]).join(',')}${prefix}`;
    const reg = await ProcessRegistry.open({
      backend: url,
      nodeName: node,
      backendOpts: { lease },
      cleanupInterval: 0,
    });
    open.push(reg);
    return reg;
  };
  /** Compact the cluster's history up to its current revision. */
  const compactNow = async (reg: ProcessRegistry) => {
    const be = reg.backend as EtcdBackendApi;
    const raw = (
      be as unknown as { client: { kv: { compact(r: { revision: number; physical: boolean }): Promise<unknown> } } }
    ).client;
    await raw.kv.compact({ revision: await be.currentRevision(), physical: true });
  };
  /** Node A on member 0, node B on member 2 with a watched cache, a live holder, `svc` registered by A. */
  const cacheSetup = async (prefix: string) => {
    const a = await node('node-a', prefix, [0]);
    const b = await node('node-b', prefix, [2]);
    const p = await spawnSleeper();
    const cache = await LookupCache.open(b, { ttlMs: 600_000 });
    await a.register('svc', p.pid, { v: 1 }, { node: 'node-a' });
    return { a, p, cache };
  };
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    for (const r of open) await r.close().catch(() => undefined);
    await killAllSleepers();
    await c?.stop();
  });

  it('two nodes race 100 registrations of the same 50 keys: exactly 50 winners, every loser told the holder', async () => {
    const a = await node('node-a', '/race', [0, 1, 2], 'session');
    const b = await node('node-b', '/race', [2, 1, 0], 'session');
    const [pa, pb] = await spawnSleepers(2);
    const keys = Array.from({ length: 50 }, (_, i) => `svc-${i}`);
    const attempts = keys.flatMap((k) => [
      { reg: a, k, pid: pa.pid, node: 'node-a' },
      { reg: b, k, pid: pb.pid, node: 'node-b' },
    ]);
    const results = await Promise.allSettled(attempts.map((t) => t.reg.register(t.k, t.pid, { by: t.node })));
    const winners = results.filter((r) => r.status === 'fulfilled');
    expect(winners.length).to.equal(50);
    const outcomes = attempts.map((t, i) => {
      const r = results[i];
      present(r, `an outcome for attempt ${i}`);
      return { t, r };
    });
    for (const k of keys) {
      const holder = await a.lookup(k);
      present(holder, `${k} is held`);
      expect(await b.lookup(k), 'both nodes see the same holder').to.deep.equal(holder);
      const mine = outcomes.filter((x) => x.t.k === k);
      expect(mine.filter((x) => x.r.status === 'fulfilled').length, `one winner for ${k}`).to.equal(1);
      for (const { r } of mine) {
        if (r.status === 'fulfilled') {
          expect(r.value.pid).to.equal(holder.pid);
          continue;
        }
        expect(r.reason instanceof AlreadyRegisteredError, `loser got ${r.reason}`).to.be.ok;
        expect(r.reason.holder.pid, 'the loser is told who holds the key').to.equal(holder.pid);
        expect(r.reason.holder.node).to.equal(holder.node);
      }
    }
  });

  it('read-your-writes: a write acknowledged through member 0 is read at once through member 2', async () => {
    const a = await node('node-a', '/ryw', [0]);
    const b = await node('node-b', '/ryw', [2]);
    const p = await spawnSleeper();
    for (let i = 0; i < 100; i++) {
      const k = `k${i}`;
      await a.register(k, p.pid, { i }, { node: 'node-a' });
      expect((await b.lookup(k))?.meta.i, `lookup on B of ${k} right after A's register`).to.equal(i);
      await b.updateMetadata(k, { i, by: 'b' });
      expect((await a.lookup(k))?.meta.by, `A sees B's metadata update of ${k}`).to.equal('b');
      if (i % 2 === 0) {
        await a.unregister(k);
        expect(await b.lookup(k), `B sees A's unregister of ${k}`).to.equal(undefined);
      }
    }
    expect((await b.list({ limit: 1000 })).items.length).to.equal(50);
  });

  it('watch: list-then-watch from a revision sees every change in order; a compacted revision is reported', async () => {
    const a = await node('node-a', '/watch', [0]);
    const b = await node('node-b', '/watch', [1]);
    const p = await spawnSleeper();
    const be = b.backend as EtcdBackendApi;
    await a.register('before', p.pid, {}, { node: 'node-a' });
    const rev = await be.currentRevision();
    const events: ChangeEvent[] = [];
    const stop = await be.watch({ namespace: 'default', sinceRevision: rev }, (e) => events.push(e));
    await a.register('w1', p.pid, { v: 1 }, { node: 'node-a' });
    await a.updateMetadata('w1', { v: 2 });
    await a.unregister('w1');
    await waitFor(() => events.length >= 3, 10_000, 'three events');
    stop();
    expect(events.map((e) => [e.type, e.key, e.entry?.meta.v])).to.deep.equal([
      ['put', 'w1', 1],
      ['put', 'w1', 2],
      ['delete', 'w1', undefined],
    ]);
    const [e0, e1, e2] = events;
    present(e0, 'a first event');
    present(e1, 'a second event');
    present(e2, 'a third event');
    expect(e0.revision > rev && e1.revision > e0.revision && e2.revision > e1.revision).to.be.ok;

    // Compact past `rev`: a watch from it must be told to resync.
    await compactNow(a);
    let failure: RegistryError | undefined;
    const stop2 = await be.watch(
      { sinceRevision: rev },
      () => undefined,
      (err) => (failure = err as RegistryError),
    );
    await waitFor(() => failure !== undefined, 10_000, 'the compaction to be reported');
    stop2();
    present(failure, 'the compaction is reported');
    expect(failure.details?.compacted).to.equal(true);
    expect(failure.message).to.match(/compacted/);
  });

  it('a cached lookup on node B is updated by the watch when node A changes the key', async () => {
    const { a, p, cache } = await cacheSetup('/cache');
    try {
      expect((await cache.lookup('svc'))?.meta.v).to.equal(1);
      expect((await cache.lookup('svc'))?.meta.v).to.equal(1);
      expect(cache.stats().hits, 'the second lookup is a hit').to.equal(1);
      await a.updateMetadata('svc', { v: 2 });
      await waitFor(async () => (await cache.lookup('svc'))?.meta.v === 2, 5_000, 'the cache to see v=2');
      await a.unregister('svc');
      await waitFor(async () => (await cache.lookup('svc')) === undefined, 5_000, 'the cache to see the unregister');
      // A negative entry is filled in by a later register too.
      await a.register('svc', p.pid, { v: 3 }, { node: 'node-a' });
      await waitFor(async () => (await cache.lookup('svc'))?.meta.v === 3, 5_000, 'the cache to see the new holder');
      expect(cache.stats().invalidations >= 3).to.be.ok;
      expect(cache.stats().misses <= 2, `served from the watch, not by re-reading (misses ${cache.stats().misses})`).to
        .be.ok;
    } finally {
      await cache.close();
    }
  });

  it('a cache whose watch fell behind a compaction resyncs: the missed change is not served stale', async () => {
    const { a, cache } = await cacheSetup('/resync');
    try {
      expect((await cache.lookup('svc'))?.meta.v).to.equal(1);
      // B's only member goes down; A changes the key; the history B would resume from is compacted.
      await c.killMember(2, 'SIGKILL');
      await a.updateMetadata('svc', { v: 2 });
      await a.updateMetadata('svc', { v: 2.5 }); // compaction must pass the revision B resumes from
      await compactNow(a);
      await c.restartMember(2);
      await waitFor(() => cache.stats().resyncs >= 1, 30_000, 'the cache to resync after the compaction');
      expect((await cache.lookup('svc'))?.meta.v, 'the missed change is read, not the stale cached value').to.equal(
        2.5,
      );
      await a.updateMetadata('svc', { v: 3 });
      await waitFor(
        async () => (await cache.lookup('svc'))?.meta.v === 3,
        10_000,
        'the re-established watch to deliver v=3',
      );
    } finally {
      await cache.close();
      if (!c.running(2)) await c.restartMember(2);
    }
  });
});
