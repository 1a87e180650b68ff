/**
 * SQLite register refused by a live holder names the holder that refused, even when another
 * process changes the key at that very moment (issue 13: the SQLite multi-process linearizability
 * scenario saw `register(pid P) → conflict (holder P)`: the refusal and the read of the holder were
 * two autocommit statements, and another process unregistered the holder and registered P between
 * them).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { AlreadyRegisteredError, type Registration } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleepers } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

describe('registry: sqlite register refused names the holder that refused', () => {
  after(async () => {
    await killAllSleepers();
  });

  it('a write by another connection between the refusal and the read of the holder cannot slip in', async () => {
    const tmp = tempDir('procreg-race-');
    const url = `sqlite:${join(tmp.dir, 'r.db')}`;
    const [a, b] = await spawnSleepers(2);
    const mine = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    // The other process: fails at once instead of waiting when the file is write-locked.
    const other = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, backendOpts: { busyTimeout: 0 } });
    try {
      await other.register('k', b.pid);
      // Right after the refusal, before the holder is read, the other connection hands the key to
      // our pid (as a concurrent process can). Under one write lock that write must wait.
      const backend = mine.backend as unknown as { lookup(ns: string, key: string): Registration | undefined };
      const lookup = backend.lookup.bind(backend);
      let interleaved = 0;
      let blocked = 0;
      backend.lookup = (ns, key) => {
        if (interleaved++ === 0) {
          try {
            // (synchronous on SQLite: a locked file throws here)
            void other.backend.unregister(ns, key);
            void other.backend.register(
              {
                namespace: ns,
                key,
                pid: a.pid,
                node: mine.nodeName,
                meta: { by: 'other' },
                registeredAt: 1,
                updatedAt: 1,
              },
              { replaceIf: () => true },
            );
          } catch {
            blocked++;
          }
        }
        return lookup(ns, key);
      };
      const err = await mine.register('k', a.pid, { by: 'me' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(interleaved, 'the holder was read once').to.equal(1);
      expect(blocked, 'the other write waited for the lock').to.equal(1);
      expect(err).to.be.instanceOf(AlreadyRegisteredError);
      expect((err as AlreadyRegisteredError).holder.pid, 'the holder that refused').to.equal(b.pid);
      expect((await other.lookup('k'))?.pid).to.equal(b.pid);
    } finally {
      await mine.close();
      await other.close();
      tmp.cleanup();
    }
  });
});
