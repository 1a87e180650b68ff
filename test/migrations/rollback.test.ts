/**
 * Dry runs change nothing; phases refuse to run out of order; rollback walks back phase by
 * phase, copying writes made since optimize back into the retired legacy store.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidInputError } from '../../src/backends/contract.js';
import { Migration, phases, PROFILE, rollback, runPhase, status } from '../../src/migrations/index.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { fixture, FIXTURE_NODE } from './support.js';

const t = tempDir('procreg-rollback-');
after(() => t.cleanup());

describe('plan, order and rollback', () => {
  it('dry runs write nothing, order is enforced, rollback returns phase by phase', async () => {
    const { path } = fixture('diverged', t.dir);
    const from = `legacy:${path}`;
    const to = `sqlite:${join(t.dir, 'new.db')}`;
    const m = () => new Migration({ config: join(t.dir, 'registry.config.json'), nodeName: FIXTURE_NODE });

    await assert.rejects(runPhase(m(), phases.hybrid, { to }), (e: Error) => e instanceof InvalidInputError && /needs phase wrap first/.test(e.message));
    const plan = await phases.wrap.plan(m(), { from });
    assert.equal(plan.counts?.pidMismatch, 2);
    assert.equal(existsSync(join(t.dir, 'registry.config.json')), false, 'wrap --dry-run wrote no config');
    await runPhase(m(), phases.wrap, { from });
    const mp = m();
    const hplan = await phases.hybrid.plan(mp, { to });
    await mp.close();
    assert.deepEqual(hplan.counts, { source: 7, target: 0 });
    assert.equal(status(m()).current, 'wrap', 'hybrid --dry-run changed nothing');

    await runPhase(m(), phases.hybrid, { to });
    await runPhase(m(), phases.cutover, {});
    await runPhase(m(), phases.optimize, {});
    assert.equal(m().defaultProfile(), PROFILE.target);

    // A write on the pure target after optimize...
    const target = await ProcessRegistry.open({ backend: to, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
    await target.register('after-optimize', 777, { late: true }, { node: 'node-a' });
    await target.unregister('same');
    await target.close();
    // ...is copied back into the legacy store when optimize is rolled back.
    const r = await rollback(m());
    assert.equal(r.phase, 'optimize');
    assert.equal(m().defaultProfile(), PROFILE.hybrid);
    const legacy = await ProcessRegistry.open({ backend: from, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
    try {
      assert.deepEqual((await legacy.lookup('after-optimize'))?.meta, { late: true });
      assert.equal(await legacy.lookup('same'), undefined);
    } finally {
      await legacy.close();
    }
    assert.equal(status(m()).current, 'cutover');
    await rollback(m()); // cutover
    assert.equal(m().defaultProfile(), PROFILE.source);
    await rollback(m()); // hybrid
    assert.equal(m().readConfig().profiles?.[PROFILE.hybrid], undefined);
    await rollback(m()); // wrap
    assert.equal(m().defaultProfile(), null);
    assert.equal(status(m()).current, null);
    await assert.rejects(rollback(m()), /nothing to roll back/);
  });
});
