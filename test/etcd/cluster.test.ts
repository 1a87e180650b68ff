/** The test cluster helper itself: start, kill a member, restart it, stop — all by pid. */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { startEtcdCluster } from '../support/etcd-cluster.js';
import { pidExists } from '../../src/registry/liveness.js';

describe('etcd: the test cluster helper', function () {
  this.timeout(90_000);
  it('3-member cluster: start, SIGKILL a member, restart it, stop', async () => {
    const c = await startEtcdCluster({ members: 3 });
    try {
      expect(c.endpoints.length).to.equal(3);
      expect(c.url('/x')).to.match(/^etcd:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/x$/);
      const pid = c.pid(1)!;
      expect(pidExists(pid)).to.be.ok;
      await c.killMember(1, 'SIGKILL');
      expect(c.running(1)).to.equal(false);
      expect(pidExists(pid)).to.equal(false);
      await c.restartMember(1);
      expect(c.running(1)).to.equal(true);
      await c.waitHealthy();
      const res = await fetch(`http://${c.endpoints[1]}/health`);
      expect(((await res.json()) as { health: string }).health).to.equal('true');
    } finally {
      const pids = [0, 1, 2].map((i) => c.pid(i)!);
      await c.stop();
      for (const p of pids) expect(pidExists(p), `member pid ${p} still running`).to.equal(false);
      expect(existsSync(c.dataRoot)).to.equal(false);
    }
  });
});
