/**
 * Dry runs change nothing; phases refuse to run out of order; rollback walks back phase by
 * phase, copying writes made since optimize back into the retired legacy store.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../src/backends/contract.js';
import { Migration, phases, PROFILE, rollback, runPhase, status } from '../../src/migrations/index.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { fixture, FIXTURE_NODE } from './support.js';

const t = tempDir('procreg-rollback-');

describe('plan, order and rollback', () => {
  after(() => t.cleanup());

  it('dry runs write nothing, order is enforced, rollback returns phase by phase', async () => {
    const { path } = fixture('diverged', t.dir);
    const from = `legacy:${path}`;
    const to = `sqlite:${join(t.dir, 'new.db')}`;
    const m = () => new Migration({ config: join(t.dir, 'registry.config.json'), nodeName: FIXTURE_NODE });

    await expect(runPhase(m(), phases.hybrid, { to })).to.be.rejectedWith(InvalidInputError, /needs phase wrap first/);
    const plan = await phases.wrap.plan(m(), { from });
    expect(plan.counts?.pidMismatch).to.equal(2);
    expect(existsSync(join(t.dir, 'registry.config.json')), 'wrap --dry-run wrote no config').to.equal(false);
    await runPhase(m(), phases.wrap, { from });
    const mp = m();
    const hplan = await phases.hybrid.plan(mp, { to });
    await mp.close();
    expect(hplan.counts).to.deep.equal({ source: 7, target: 0 });
    expect(status(m()).current, 'hybrid --dry-run changed nothing').to.equal('wrap');

    await runPhase(m(), phases.hybrid, { to });
    await runPhase(m(), phases.cutover, { acceptChanges: true }); // diverged: default/mismatch changes 100 → 200
    await runPhase(m(), phases.optimize, { acceptChanges: true });
    expect(m().defaultProfile()).to.equal(PROFILE.target);

    // A write on the pure target after optimize...
    const target = await ProcessRegistry.open({ backend: to, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
    await target.register('after-optimize', 777, { late: true }, { node: 'node-a' });
    await target.unregister('same');
    await target.close();
    // ...is copied back into the legacy store when optimize is rolled back.
    const r = await rollback(m());
    expect(r.phase).to.equal('optimize');
    expect(m().defaultProfile()).to.equal(PROFILE.hybrid);
    const legacy = await ProcessRegistry.open({ backend: from, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
    try {
      expect((await legacy.lookup('after-optimize'))?.meta).to.deep.equal({ late: true });
      expect(await legacy.lookup('same')).to.equal(undefined);
    } finally {
      await legacy.close();
    }
    expect(status(m()).current).to.equal('cutover');
    await rollback(m()); // cutover
    expect(m().defaultProfile()).to.equal(PROFILE.source);
    await rollback(m()); // hybrid
    expect(m().readConfig().profiles?.[PROFILE.hybrid]).to.equal(undefined);
    await rollback(m()); // wrap
    expect(m().defaultProfile()).to.equal(null);
    expect(status(m()).current).to.equal(null);
    await expect(rollback(m())).to.be.rejectedWith(/nothing to roll back/);
  });
});
