/**
 * Journal, lock and resumption: a second concurrent run is refused (exit 4), a dead owner's lock
 * is taken over, an interrupted backfill resumes, a write during the backfill lands in both
 * stores, a journal naming a vanished store fails with a clear one-line error.
 */
import { expect } from 'chai';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ConflictError } from '../../src/backends/contract.js';
import { Migration, phases, PROFILE, runPhase } from '../../src/migrations/index.js';
import { verifyStates } from '../../src/migrations/verify.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { writeLargeLegacy } from '../../scripts/legacy-fixtures.js';
import { deadPid, killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { cli, FIXTURE_NODE } from './support.js';

const roots: Array<{ cleanup(): void }> = [];

function setup(n = 3000) {
  const t = tempDir('procreg-journal-');
  roots.push(t);
  writeLargeLegacy(join(t.dir, 'old.db'), n);
  const m = () => new Migration({ config: join(t.dir, 'registry.config.json'), nodeName: FIXTURE_NODE });
  return { dir: t.dir, m, from: `legacy:${join(t.dir, 'old.db')}`, to: `sqlite:${join(t.dir, 'new.db')}` };
}

async function open(url: string): Promise<ProcessRegistry> {
  return ProcessRegistry.open({ backend: url, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
}

describe('migration journal and lock', () => {
  after(async () => {
    await killAllSleepers();
    for (const r of roots) r.cleanup();
  });

  it("a live owner keeps the lock (ConflictError, CLI exit 4); a dead owner's lock is taken over", async () => {
    const s = setup(100);
    const m = s.m();
    const owner = await spawnSleeper();
    writeFileSync(
      m.lock.path,
      JSON.stringify({ pid: owner.pid, host: os.hostname(), startedAt: Date.now(), command: 'migrate hybrid' }),
    );
    await expect(runPhase(m, phases.wrap, { from: s.from })).to.be.rejectedWith(
      ConflictError,
      /another migration is running \(pid \d+/,
    );
    const r = await cli(['migrate', 'wrap', '--from', s.from, '--yes'], { cwd: s.dir });
    expect(r.code, r.stderr).to.equal(4);
    expect(r.stderr).to.match(/^registry: another migration is running/);
    await owner.kill();
    const stale = await deadPid();
    writeFileSync(
      m.lock.path,
      JSON.stringify({ pid: stale, host: os.hostname(), startedAt: Date.now(), command: 'migrate wrap' }),
    );
    const ok = await cli(['migrate', 'wrap', '--from', s.from, '--yes', '--json'], { cwd: s.dir });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout).record.status).to.equal('done');
    expect(m.lock.read(), 'lock released').to.equal(undefined);
  });

  it('an interrupted backfill resumes from its journaled cursor; a write during the backfill is in both stores', async () => {
    const s = setup(3000);
    await runPhase(s.m(), phases.wrap, { from: s.from });
    // Run 1 stops (as if killed) after two batches.
    let batches = 0;
    await expect(
      runPhase(
        s.m(),
        phases.hybrid,
        { to: s.to },
        {
          batch: 250,
          onBatch: () => {
            if (++batches === 2) throw new Error('simulated crash');
          },
        },
      ),
    ).to.be.rejectedWith(/simulated crash/);
    const mid = s.m().journal.interrupted();
    expect(mid?.phase).to.equal('hybrid');
    expect(mid?.cursor?.copied).to.equal(500);
    // Run 2 resumes; during its backfill a writer on the hybrid profile registers, updates and removes keys.
    const writer = await ProcessRegistry.open({
      backend: 'hybrid:',
      backendOpts: { primary: s.from, backup: s.to },
      nodeName: FIXTURE_NODE,
      cleanupInterval: 0,
    });
    let wrote = false;
    const r = await runPhase(
      s.m(),
      phases.hybrid,
      { to: s.to },
      {
        batch: 250,
        onBatch: async () => {
          if (wrote) return;
          wrote = true;
          await writer.register('during-backfill', 4242, { new: true }, { namespace: 'ns0', node: 'node-a' });
          await writer.updateMetadata('svc-00000000', { touched: 1 }, { namespace: 'ns0' }); // already copied
          await writer.updateMetadata('svc-00002996', { touched: 2 }, { namespace: 'ns0' }); // not copied yet
          await writer.unregister('svc-00000004', { namespace: 'ns0' }); // already copied
        },
      },
    );
    await writer.close();
    expect(r.resumed).to.equal(true);
    expect(r.record?.status).to.equal('done');
    const a = await open(s.from);
    const b = await open(s.to);
    try {
      for (const reg of [a, b]) {
        expect(
          (await reg.lookup('during-backfill', { namespace: 'ns0' }))?.meta,
          `${reg.backend.name}: new key`,
        ).to.deep.equal({ new: true });
        expect(await reg.lookup('svc-00000004', { namespace: 'ns0' }), `${reg.backend.name}: removed key`).to.equal(
          undefined,
        );
      }
      expect((await b.lookup('svc-00000000', { namespace: 'ns0' }))?.meta).to.deep.equal({ touched: 1 });
      expect((await b.lookup('svc-00002996', { namespace: 'ns0' }))?.meta).to.deep.equal({ touched: 2 });
      const v = await verifyStates(a, b);
      expect(v.equivalent).to.equal(true);
      expect(
        b.backend.count(),
        'every effective entry once (all 3000 keys are live), plus the new key, minus the removed one',
      ).to.equal(3000 + 1 - 1);
    } finally {
      await a.close();
      await b.close();
    }
    const cfg = s.m().readConfig();
    expect(cfg.profiles?.[PROFILE.hybrid]?.backendOpts).to.deep.equal({ primary: s.from, backup: s.to });
  });

  it('a journal naming a vanished store gives a clear one-line error, not a stack trace', async () => {
    const s = setup(50);
    for (const args of [
      ['migrate', 'wrap', '--from', s.from, '--yes'],
      ['migrate', 'hybrid', '--to', s.to, '--yes'],
    ]) {
      const r = await cli(args, { cwd: s.dir });
      expect(r.code, r.stderr).to.equal(0);
    }
    rmSync(join(s.dir, 'old.db'));
    const r = await cli(['migrate', 'cutover', '--yes'], { cwd: s.dir });
    expect(r.code, r.stderr).to.equal(6);
    expect(r.stderr).to.match(
      /^registry: the migration journal .*registry\.migration\.json names legacy:.*old\.db as the source, but it cannot be opened \(legacy database .* does not exist/,
    );
    expect(r.stderr.trim().split('\n').length).to.equal(1);
    const st = await cli(['migrate', 'status', '--check', '--json'], { cwd: s.dir });
    expect(st.code).to.equal(6);
    expect(JSON.parse(st.stdout).error.message).to.match(/cannot be opened/);
  });
});
