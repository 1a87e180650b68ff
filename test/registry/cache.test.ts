/** cachedLookup: coherent through the change feed, invalidated by own writes, TTL-bound without a feed. */
import { expect } from 'chai';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { present } from '../support/expect.js';
import { killAllSleepers, spawnSleeper, spawnSleepers, waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

describe('cachedLookup', () => {
  after(() => killAllSleepers());

  it('memory: a write that bypasses this service reaches the cache through the feed', async () => {
    const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    try {
      const [a, b] = [await spawnSleeper(), await spawnSleeper()];
      await reg.register('svc', a.pid, { v: 1 });
      expect((await reg.cachedLookup('svc'))?.pid).to.equal(a.pid); // miss, fills
      expect((await reg.cachedLookup('svc'))?.pid).to.equal(a.pid); // hit
      // Another writer (as another node would) changes the key behind the service's back.
      const e = reg.makeEntry('svc', b.pid, { v: 2 });
      await reg.backend.register(e, { replaceIf: () => true });
      await waitFor(async () => (await reg.cachedLookup('svc'))?.pid === b.pid, 5000, 'the feed to update the cache');
      const s = await reg.cacheStats();
      present(s, 'the cache keeps stats');
      expect(s.hits >= 1 && s.misses >= 1 && s.invalidations >= 1, JSON.stringify(s)).to.be.ok;
      // A dead holder is never served from the cache.
      await b.kill();
      expect(await reg.cachedLookup('svc')).to.equal(undefined);
    } finally {
      await reg.close();
    }
  });

  it('sqlite (no feed): own writes invalidate at once, others within the TTL', async () => {
    const t = tempDir();
    const url = `sqlite:${join(t.dir, 'c.db')}`;
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    const other = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      const [a, b, c] = [await spawnSleeper(), await spawnSleeper(), await spawnSleeper()];
      await reg.register('svc', a.pid);
      expect((await reg.cachedLookup('svc', { ttlMs: 300 }))?.pid).to.equal(a.pid);
      await reg.unregister('svc');
      await reg.register('svc', b.pid);
      expect((await reg.cachedLookup('svc'))?.pid, 'own writes invalidate immediately').to.equal(b.pid);
      await reg.bulkRegister([{ key: 'svc', pid: a.pid }]).catch(() => undefined); // held by b: refused, no change
      expect((await reg.cachedLookup('svc'))?.pid).to.equal(b.pid);
      await reg.unregister('svc');
      await reg.bulkRegister([{ key: 'svc', pid: a.pid }]);
      expect((await reg.cachedLookup('svc'))?.pid, 'bulk writes invalidate too').to.equal(a.pid);
      await other.unregister('svc');
      await other.register('svc', c.pid);
      await waitFor(async () => (await reg.cachedLookup('svc'))?.pid === c.pid, 5000, 'the TTL to expire');
    } finally {
      await reg.close();
      await other.close();
      t.cleanup();
    }
  });

  it('lookup uses the cache by default in long-lived services with their own feed, not in one-shot ones or on shared stores; cache: false turns it off', async () => {
    const t = tempDir();
    const long = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 60_000 });
    const off = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 60_000, cache: false });
    const oneShot = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    const noFeed = await ProcessRegistry.open({ backend: `sqlite:${join(t.dir, 'n.db')}`, cleanupInterval: 60_000 });
    try {
      expect(long.cacheLookups, 'long-lived with a feed').to.equal(true);
      expect(off.cacheLookups, 'cache: false').to.equal(false);
      expect(oneShot.cacheLookups, 'one-shot (cleanupInterval 0)').to.equal(false);
      // A shared store (another process may write the file): lookups stay linearizable unless cache: true.
      expect(noFeed.cacheLookups, 'a shared store').to.equal(false);
      const [a, b] = await spawnSleepers(2);
      await long.register('svc', a.pid);
      for (let i = 0; i < 3; i++) expect((await long.lookup('svc'))?.pid).to.equal(a.pid);
      const s = await long.cacheStats();
      present(s, 'lookup went through the cache');
      expect([s.misses, s.hits]).to.deep.equal([1, 2]);
      // Read-your-writes: an acknowledged write through the service is seen by the next lookup.
      await long.unregister('svc');
      expect(await long.lookup('svc')).to.equal(undefined);
      await long.register('svc', b.pid);
      expect((await long.lookup('svc'))?.pid).to.equal(b.pid);
      await b.kill();
      expect(await long.lookup('svc'), 'a dead holder is not served from the cache').to.equal(undefined);
      await off.register('svc', a.pid);
      await off.lookup('svc');
      expect(await off.cacheStats()).to.equal(undefined);
    } finally {
      for (const r of [long, off, oneShot, noFeed]) await r.close();
      t.cleanup();
    }
  });
});
