/** cachedLookup: coherent through the change feed, invalidated by own writes, TTL-bound without a feed. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

after(() => killAllSleepers());

describe('cachedLookup', () => {
  it('memory: a write that bypasses this service reaches the cache through the feed', async () => {
    const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    try {
      const [a, b] = [await spawnSleeper(), await spawnSleeper()];
      await reg.register('svc', a.pid, { v: 1 });
      assert.equal((await reg.cachedLookup('svc'))?.pid, a.pid); // miss, fills
      assert.equal((await reg.cachedLookup('svc'))?.pid, a.pid); // hit
      // Another writer (as another node would) changes the key behind the service's back.
      const e = reg.makeEntry('svc', b.pid, { v: 2 });
      reg.backend.register(e, { replaceIf: () => true });
      await waitFor(async () => (await reg.cachedLookup('svc'))?.pid === b.pid, 5000, 'the feed to update the cache');
      const s = await reg.cacheStats();
      assert.ok(s!.hits >= 1 && s!.misses >= 1 && s!.invalidations >= 1, JSON.stringify(s));
      // A dead holder is never served from the cache.
      await b.kill();
      assert.equal(await reg.cachedLookup('svc'), undefined);
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
      assert.equal((await reg.cachedLookup('svc', { ttlMs: 300 }))?.pid, a.pid);
      await reg.unregister('svc');
      await reg.register('svc', b.pid);
      assert.equal((await reg.cachedLookup('svc'))?.pid, b.pid, 'own writes invalidate immediately');
      await reg.bulkRegister([{ key: 'svc', pid: a.pid }]).catch(() => undefined); // held by b: refused, no change
      assert.equal((await reg.cachedLookup('svc'))?.pid, b.pid);
      await reg.unregister('svc');
      await reg.bulkRegister([{ key: 'svc', pid: a.pid }]);
      assert.equal((await reg.cachedLookup('svc'))?.pid, a.pid, 'bulk writes invalidate too');
      await other.unregister('svc');
      await other.register('svc', c.pid);
      await waitFor(async () => (await reg.cachedLookup('svc'))?.pid === c.pid, 5000, 'the TTL to expire');
    } finally {
      await reg.close();
      await other.close();
      t.cleanup();
    }
  });
});
