/** The test cluster helper itself: start, kill a member, restart it, stop — all by pid. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startEtcdCluster } from '../support/etcd-cluster.js';
import { pidExists } from '../../src/registry/liveness.js';

test('3-member cluster: start, SIGKILL a member, restart it, stop', { timeout: 90_000 }, async () => {
  const c = await startEtcdCluster({ members: 3 });
  try {
    assert.equal(c.endpoints.length, 3);
    assert.match(c.url('/x'), /^etcd:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/x$/);
    const pid = c.pid(1)!;
    assert.ok(pidExists(pid));
    await c.killMember(1, 'SIGKILL');
    assert.equal(c.running(1), false);
    assert.equal(pidExists(pid), false);
    await c.restartMember(1);
    assert.equal(c.running(1), true);
    await c.waitHealthy();
    const res = await fetch(`http://${c.endpoints[1]}/health`);
    assert.equal(((await res.json()) as { health: string }).health, 'true');
  } finally {
    const pids = [0, 1, 2].map((i) => c.pid(i)!);
    await c.stop();
    for (const p of pids) assert.equal(pidExists(p), false, `member pid ${p} still running`);
    assert.equal(existsSync(c.dataRoot), false);
  }
});
