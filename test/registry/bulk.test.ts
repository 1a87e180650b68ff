/** The library's bulk path on the local backends: atomic batches report exactly what was written. */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';

describe('registry: atomic bulk on memory and sqlite', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'procreg-bulk-'));
  });
  after(async () => {
    await killAllSleepers();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const backend of ['memory:', 'sqlite']) {
    it(`issue 12 item 11: an atomic bulk that rolls back reports no item as written (${backend})`, async () => {
      const url = backend === 'sqlite' ? `sqlite:${join(dir, 'bulk.db')}` : backend;
      const registry = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      try {
        const a = await spawnSleeper();
        const b = await spawnSleeper();
        await registry.register('held', b.pid);
        const results = await registry.bulkRegister(
          [
            { key: 'free1', pid: a.pid },
            { key: 'held', pid: a.pid },
            { key: 'free2', pid: a.pid },
          ],
          { atomic: true },
        );
        expect(results.map((r) => r.ok)).to.deep.equal([false, false, false]);
        const r1 = results[1];
        expect(r1 && !r1.ok && 'holder' in r1 ? r1.holder.pid : undefined).to.equal(b.pid);
        expect(await registry.lookup('free1')).to.equal(undefined);
        expect(await registry.lookup('free2')).to.equal(undefined);
        // the backend itself says the same (conformance-level callers)
        const direct = await registry.backend.bulkRegister?.(
          [registry.makeEntry('free3', a.pid), registry.makeEntry('held', a.pid)],
          { atomic: true, replaceIf: () => false },
        );
        expect(direct?.map((r) => r.ok)).to.deep.equal([false, false]);
        expect(await registry.lookup('free3')).to.equal(undefined);
      } finally {
        await registry.close();
      }
    });
  }
});

describe('registry: a pid given as a numeric string (library callers)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'procreg-pidstr-'));
  });
  after(async () => {
    await killAllSleepers();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const backend of ['memory:', 'sqlite']) {
    it(`is stored and answered as a number, single and bulk (${backend})`, async () => {
      const url = backend === 'sqlite' ? `sqlite:${join(dir, 'pidstr.db')}` : backend;
      const registry = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      try {
        const a = await spawnSleeper();
        // As a JavaScript caller without types may pass it (a CLI argument, a form field).
        const asText = String(a.pid) as unknown as number;
        const one = await registry.register('one', asText);
        expect(one.pid).to.equal(a.pid);
        await registry.bulkRegister([{ key: 'two', pid: asText }]);
        for (const key of ['one', 'two']) {
          const found = await registry.lookup(key);
          expect(found?.pid, key).to.equal(a.pid).and.to.be.a('number');
        }
        expect((await registry.list()).items.map((e) => typeof e.pid)).to.deep.equal(['number', 'number']);
      } finally {
        await registry.close();
      }
    });
  }
});
