/**
 * The service's store-facing methods (issue 14 §6, src/registry/service-base.ts): what the
 * migrations, verify and the hybrid's divergence check use instead of a backend. On a real SQLite
 * file and on memory, with a real live process and a pid that is no longer running.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { Registration } from '../../src/backends/contract.js';
import { ClosedError } from '../../src/backends/contract.js';
import { verifyStates } from '../../src/registry/compare.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { deadPid, killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const NODE = 'store-node';

describe('service: the store-facing methods the migrations use (issue 14 §6)', function () {
  this.timeout(60_000);
  const t = tempDir('procreg-service-store-');
  const regs: ProcessRegistry[] = [];
  after(async () => {
    await Promise.allSettled(regs.map((r) => r.close()));
    await killAllSleepers();
    t.cleanup();
  });

  const entry = (key: string, pid: number, node = NODE, meta: Record<string, unknown> = {}): Registration => ({
    namespace: 'ns',
    key,
    pid,
    node,
    meta,
    registeredAt: 1000,
    updatedAt: 1000,
    pidStart: null,
  });

  for (const kind of ['sqlite', 'memory'] as const) {
    const open = async (name: string) => {
      const backend = kind === 'sqlite' ? `sqlite:${join(t.dir, `${name}.db`)}` : 'memory:';
      const r = await ProcessRegistry.open({ backend, nodeName: NODE, cleanupInterval: 0 });
      regs.push(r);
      return r;
    };

    it(`${kind}: overwrite writes entries as they are; entriesReadOnly skips a dead one without removing it; storedCount counts it`, async () => {
      const reg = await open('a');
      const live = await spawnSleeper();
      const dead = await deadPid();
      await reg.register('k-live', live.pid, { v: 1 }, { namespace: 'ns' });
      // A live holder is replaced (the source is the truth), and a dead pid is written unjudged.
      await reg.overwrite([
        entry('k-live', live.pid, NODE, { v: 2 }),
        entry('k-dead', dead),
        entry('k-far', dead, 'far'),
      ]);
      expect((await reg.lookup('k-live', { namespace: 'ns' }))?.meta).to.deep.equal({ v: 2 });
      const seen: string[] = [];
      for await (const e of reg.entriesReadOnly({ namespace: 'ns' })) seen.push(e.key);
      expect(seen, "this node's dead entry skipped; another node's entry is its to judge").to.deep.equal([
        'k-far',
        'k-live',
      ]);
      expect(await reg.storedCount('ns'), 'read-only: the dead entry is still stored').to.equal(3);
      expect(await reg.storedCount(), 'every namespace').to.equal(3);
      expect(await reg.namespaces()).to.deep.equal(['ns']);
      const d = await reg.digestWithSource('ns', 16);
      expect(d.how).to.equal(reg.capabilities.digest ? 'backend' : 'listing');
      expect(await reg.digest('ns', 16)).to.deep.equal(d.d);
    });

    it(`${kind}: the optional contract methods answer through the service, undefined where the backend has none`, async () => {
      const reg = await open('b');
      expect(reg.node(), 'not a node').to.equal(undefined);
      expect(await reg.inspect(), 'no anomaly report').to.equal(undefined);
      expect(reg.rawEntries(), 'no raw view').to.equal(undefined);
      const c = await reg.compact();
      if (kind === 'sqlite') expect(c?.bytesAfter).to.be.a('number');
      else expect(c).to.equal(undefined);
      await reg.close();
      await expect(reg.storedCount()).to.be.rejectedWith(ClosedError);
      await expect(reg.overwrite([entry('x', 1)])).to.be.rejectedWith(ClosedError);
    });
  }

  it('verifyStates compares two services: a dead entry of the reading node is absent on both sides', async () => {
    const a = await ProcessRegistry.open({
      backend: `sqlite:${join(t.dir, 'va.db')}`,
      nodeName: NODE,
      cleanupInterval: 0,
    });
    const b = await ProcessRegistry.open({ backend: 'memory:', nodeName: NODE, cleanupInterval: 0 });
    regs.push(a, b);
    const live = await spawnSleeper();
    await a.overwrite([entry('same', live.pid), entry('gone', await deadPid())]);
    await b.overwrite([entry('same', live.pid)]);
    const v = await verifyStates(a, b);
    expect(v.equivalent, JSON.stringify(v.totals)).to.equal(true);
    await b.overwrite([entry('same', live.pid, NODE, { changed: true })]);
    const w = await verifyStates(a, b);
    expect(w.totals).to.deep.equal({ onlyInA: 0, onlyInB: 0, differing: 1 });
    expect(w.differing[0]?.fields.meta).to.deep.equal([{}, { changed: true }]);
  });
});
