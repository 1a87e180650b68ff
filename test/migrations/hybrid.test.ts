/** The hybrid backend: the conformance suite over legacy(primary) + sqlite(backup), and divergence reporting. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { HybridBackend } from '../../src/backends/hybrid.js';
import { backendSuite } from '../conformance/suite.js';
import { tempDir } from '../support/tmp.js';
import { fixture, FIXTURE_NODE } from './support.js';

backendSuite('hybrid', async () => {
  const dir = tempDir('procreg-hybrid-conf-');
  return {
    registry: await ProcessRegistry.open({
      backend: 'hybrid:',
      backendOpts: { primary: { backend: `legacy:${join(dir.dir, 'old.db')}`, backendOpts: { create: true } }, backup: `sqlite:${join(dir.dir, 'new.db')}` },
      cleanupInterval: 0,
    }),
    teardown: async () => dir.cleanup(),
  };
});

describe('hybrid backend', () => {
  const t = tempDir('procreg-hybrid-');
  after(() => t.cleanup());

  it('writes both, reads primary then backup, lists the union and reports divergence in health', async () => {
    const { path } = fixture('clean', t.dir);
    const reg = await ProcessRegistry.open({
      backend: 'hybrid:',
      backendOpts: { primary: `legacy:${path}`, backup: `sqlite:${join(t.dir, 'b.db')}` },
      nodeName: FIXTURE_NODE,
      cleanupInterval: 0,
    });
    try {
      const h = reg.backend as HybridBackend;
      let health = await reg.healthCheck();
      assert.deepEqual(health.divergence, { onlyInA: 5, onlyInB: 0, differing: 0 }, 'backup empty: 5 keys only in the primary');
      assert.equal(health.status, 'degraded');
      await reg.register('new', 4242, { a: 1 }, { node: 'node-a' });
      assert.equal((await h.backup.lookup('default', 'new'))?.pid, 4242, 'write reached the backup');
      assert.equal((await h.primary.lookup('default', 'new'))?.pid, 4242, 'write reached the primary');
      await h.backup.register({ ...(await h.backup.lookup('default', 'new'))!, key: 'only-backup' }, { replaceIf: () => true });
      assert.equal((await reg.lookup('only-backup'))?.pid, 4242, 'read falls back to the backup');
      const keys = (await reg.list({})).items.map((e) => e.key);
      assert.deepEqual(keys, ['api', 'db', 'new', 'only-backup', 'web']);
      health = await reg.healthCheck();
      assert.deepEqual(health.divergence, { onlyInA: 5, onlyInB: 1, differing: 0 });
      assert.equal(await reg.unregister('new'), true);
      assert.equal(await h.backup.lookup('default', 'new'), undefined);
      assert.equal(await h.primary.lookup('default', 'new'), undefined);
    } finally {
      await reg.close();
    }
  });
});
