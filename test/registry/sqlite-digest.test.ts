/**
 * The SQLite digest worker, inside the SQLite backend (`offThreadDigests`, src/backends/sqlite-digest.ts):
 * a small file is digested in process; a large one gets an off-thread digester whose answer is
 * exactly the backend's own `digest`, and `verify` uses it on both sides without knowing the backend's name.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { Registration } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { verifyStates } from '../../src/migrations/verify.js';
import { present } from '../support/expect.js';
import { tempDir } from '../support/tmp.js';

describe('sqlite: digests off the event loop (offThreadDigests)', function () {
  this.timeout(120_000);
  const t = tempDir('procreg-sqlite-digest-');
  const regs: ProcessRegistry[] = [];
  after(async () => {
    await Promise.all(regs.map((r) => r.close()));
    t.cleanup();
  });
  const open = async (name: string) => {
    const r = await ProcessRegistry.open({
      backend: `sqlite:${join(t.dir, `${name}.db`)}`,
      nodeName: 'digest-local',
      cleanupInterval: 0,
    });
    regs.push(r);
    return r;
  };
  const entries = (n: number, ns: string): Registration[] =>
    Array.from({ length: n }, (_, i) => ({
      namespace: ns,
      key: `k${i}`,
      pid: process.pid,
      node: 'digest-local',
      meta: { i, pad: 'x'.repeat(120) },
      registeredAt: 1000,
      updatedAt: 1000,
      pidStart: null,
    }));

  it('a small file has none; a large one is digested in a worker exactly as digest() does, and verify uses it', async () => {
    const small = await open('small');
    await small.backend.bulkRegister!(entries(10, 'a'), { replaceIf: () => false });
    expect(small.backend.offThreadDigests?.(), 'a small file is digested in process').to.equal(undefined);

    const big = await open('big');
    const other = await open('other');
    for (const r of [big, other]) {
      await r.backend.bulkRegister!(entries(20_000, 'a'), { replaceIf: () => false });
      await r.backend.bulkRegister!(entries(300, 'b'), { replaceIf: () => false });
    }
    const off = big.backend.offThreadDigests?.();
    present(off, 'a file over 2 MiB gets an off-thread digester');
    const plan = [
      { namespace: 'a', buckets: 64 },
      { namespace: 'b', buckets: 16 },
    ];
    const got = await off(plan);
    for (const { namespace, buckets } of plan)
      expect(got.get(namespace), `namespace ${namespace}`).to.deep.equal(await big.backend.digest!(namespace, buckets));

    // Read as another node's entries (every one alive): a service in front of the same backend, not closed.
    const state = (r: ProcessRegistry) =>
      new ProcessRegistry(r.backend, { nodeName: 'digest-reader', cleanupInterval: 0, stats: false });
    expect((await verifyStates(state(big), state(other))).equivalent, 'equal files').to.equal(true);
    await other.backend.updateMetadata('a', 'k7', { changed: true }, { merge: false });
    const v = await verifyStates(state(big), state(other));
    expect(v.equivalent, 'one changed entry is found through the workers').to.equal(false);
    expect(v.differing.map((d) => d.key)).to.deep.equal(['k7']);
  });
});
