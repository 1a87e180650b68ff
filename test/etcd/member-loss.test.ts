/**
 * Member failures of a real 3-member cluster: losing one member under load costs no operation;
 * losing two fails writes fast with UnreachableError (exit 6) naming lost quorum, writes nothing,
 * and writes resume once the members are back.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UnreachableError } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';

const runJs = fileURLToPath(new URL('../../../bin/run.js', import.meta.url));

async function leaderIndex(c: EtcdCluster, reg: ProcessRegistry): Promise<number> {
  let idx = -1;
  await waitFor(
    async () => {
      const h = await reg.healthCheck();
      idx = c.endpoints.indexOf(h.leaderEndpoint as string);
      return idx >= 0;
    },
    15_000,
    'a leader',
  );
  return idx;
}

describe('etcd: member loss', function () {
  this.timeout(180_000);
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    await killAllSleepers();
    await c?.stop();
  });

  it('SIGKILL of the leader under register/lookup load: no operation fails, the cluster serves on', async () => {
    const reg = await ProcessRegistry.open({ backend: c.url('/one-down'), cleanupInterval: 0 });
    const holder = await spawnSleeper();
    try {
      const victim = await leaderIndex(c, reg);
      let stop = false;
      let ops = 0;
      const failures: unknown[] = [];
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const key = `w${w}-${i}`;
          try {
            await reg.register(key, holder.pid, { w, i });
            const got = await reg.lookup(key);
            expect(got?.pid, `lookup of ${key} right after its register`).to.equal(holder.pid);
            ops++;
          } catch (err) {
            failures.push(err);
          }
        }
      };
      const workers = Array.from({ length: 32 }, (_, w) => worker(w));
      await waitFor(() => ops >= 200 || failures.length > 0, 30_000, '200 operations before the kill');
      await c.killMember(victim, 'SIGKILL');
      const atKill = ops;
      await waitFor(() => ops >= atKill + 500 || failures.length > 0, 60_000, '500 operations after the kill');
      stop = true;
      await Promise.all(workers);
      expect(failures.map(String), 'no operation failed beyond client retries').to.deep.equal([]);
      expect(await reg.count(), 'every acknowledged registration is stored').to.equal(ops);
      await c.restartMember(victim);
      await c.waitHealthy();
      await reg.register('after-restart', holder.pid);
    } finally {
      await reg.close();
    }
  });

  it('SIGKILL of two members: writes fail fast with exit 6 naming lost quorum, nothing partial; writes resume after restart', async () => {
    const url = c.url('/two-down');
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    const holder = await spawnSleeper();
    try {
      await reg.register('before', holder.pid, { type: 'x' });
      await c.killMember(1, 'SIGKILL');
      await c.killMember(2, 'SIGKILL');

      const t0 = Date.now();
      const err = await reg.register('during', holder.pid, { type: 'x', capabilities: ['a', 'b'] }).catch((e) => e);
      const took = Date.now() - t0;
      expect(err instanceof UnreachableError, `expected UnreachableError, got ${err}`).to.be.ok;
      expect(err.exitCode).to.equal(6);
      expect(err.message).to.match(/lost quorum/);
      expect(took < 8000, `failed fast (${took} ms)`).to.be.ok;
      // Writes sent once the survivor knows it has no leader are refused outright (not proposed).
      await waitFor(
        async () => (await reg.healthCheck()).leader === null,
        15_000,
        'the surviving member to see no leader',
      );
      await expect(
        reg.bulkRegister(
          Array.from({ length: 10 }, (_, i) => ({ key: `bulk-${i}`, pid: holder.pid, meta: { type: 'y' } })),
        ),
      ).to.be.rejectedWith(UnreachableError, /lost quorum/);

      // The CLI: one line, exit 6, no stack trace.
      const cli = spawnSync(
        process.execPath,
        [runJs, 'register', 'cli-during', '--pid', String(holder.pid), '--backend', url],
        { encoding: 'utf8', timeout: 30_000 },
      );
      expect(cli.status, `exit code (stderr: ${cli.stderr})`).to.equal(6);
      expect(cli.stderr).to.match(/lost quorum/);
      expect(cli.stderr, 'no stack trace').to.not.match(/\n\s+at /);

      const h = await reg.healthCheck();
      expect(h.status).to.equal('unhealthy');
      expect(h.reasons.join(' ')).to.match(/lost quorum/);

      await c.restartMember(1);
      await c.restartMember(2);
      await c.waitHealthy();
      // Nothing partial. The first write may have reached the old leader's log before it lost
      // quorum (the error says its outcome is unknown): it is then applied whole — entry, index and
      // process keys — or not at all. Writes refused with "no leader" left nothing.
      const etcdctl = spawnSync(
        'etcdctl',
        ['--endpoints', c.endpoints.join(','), 'get', '--prefix', '/two-down/', '--keys-only'],
        { encoding: 'utf8' },
      );
      // c/: sweep timestamps; w/: the writer's fence and token keys (exactly-once writes, docs/etcd.md)
      const all = etcdctl.stdout
        .split('\n')
        .filter((k) => k && !k.startsWith('/two-down/c/') && !k.startsWith('/two-down/w/'));
      const markers = all.filter((k) => k.startsWith('/two-down/p/'));
      expect(markers, "one process marker: the holder's").to.deep.equal([
        `/two-down/p/${encodeURIComponent(reg.nodeName)}/${holder.pid}/${markers[0]?.split('/')[5]}/n`,
      ]);
      const keys = all.filter((k) => !markers.includes(k));
      const during = keys.filter((k) => k.endsWith('/during'));
      if (during.length) {
        expect(err.message, 'an applied-later write was reported as of unknown outcome').to.match(
          /outcome unknown[^]*may have been applied/,
        );
        expect(during.length, `all or nothing of "during": ${during.join(', ')}`).to.equal(4); // r/, i/type, i/capabilities ×2
      }
      expect(
        keys.every((k) => k.endsWith('/before') || k.endsWith('/during')),
        `only "before" (and a whole "during") exist: ${keys.join(', ')}`,
      ).to.be.ok;
      expect(await reg.lookup('cli-during')).to.equal(undefined);
      for (let i = 0; i < 10; i++) expect(await reg.lookup(`bulk-${i}`)).to.equal(undefined);
      // Writes resume.
      await reg.register('after', holder.pid);
      expect((await reg.lookup('after'))?.pid).to.equal(holder.pid);
    } finally {
      await reg.close();
    }
  });
});
