/**
 * End to end, as a CI script would do it: a legacy fixture walked through all five phases with
 * the real CLI — wrap, hybrid (into SQLite), cutover, optimize, distribute (into a real 3-member
 * etcd cluster on loopback) — with `verify` / `migrate status --check` green after each phase,
 * the effective view intact at the end, a member failover survived, and a rollback.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture, view } from './support.js';

describe('migration: legacy → sqlite → etcd, all five phases', { timeout: 300_000 }, () => {
  let c: EtcdCluster;
  const t = tempDir('procreg-e2e-');
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    await c?.stop();
    t.cleanup();
  });

  it('walks every phase with verify green at each step', async () => {
    const { path, expected } = fixture('dead', t.dir);
    const legacy = `legacy:${path}`;
    const target = `sqlite:${join(t.dir, 'registry.db')}`;
    const etcd = c.url('/procreg-e2e');
    const run = async (args: string[], code = 0) => {
      const r = await cli(args, { cwd: t.dir });
      assert.equal(r.code, code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r.stdout ? JSON.parse(r.stdout) : undefined;
    };
    const check = async () => {
      const s = await run(['migrate', 'status', '--check', '--json']);
      for (const ch of s.checks) assert.equal(ch.verify.equivalent, true, `phase ${ch.phase} proof holds`);
      return s;
    };
    const listed = async () => view((await run(['list', '-A', '--json'])).items);

    // Dry runs change nothing.
    const plan = await run(['migrate', 'wrap', '--from', legacy, '--dry-run', '--json']);
    assert.equal(plan.dryRun, true);
    assert.equal((await run(['migrate', 'status', '--json'])).started, false);

    // 1 wrap: baseline and anomalies; the service's view is the effective view.
    const w = await run(['migrate', 'wrap', '--from', legacy, '--yes', '--json']);
    assert.equal(w.verify.equivalent, true);
    assert.equal(w.record.counts.entries, expected.view.length);
    assert.equal(w.record.counts.pidMismatch, expected.anomalies.pidMismatch);
    assert.equal(w.record.counts.deadRegistryRows + w.record.counts.deadBackupRows, expected.anomalies.deadRegistryRows + expected.anomalies.deadBackupRows);
    assert.deepEqual(await listed(), expected.view, 'default profile = the wrapped legacy store');
    await check();

    // 2 hybrid: backfill into SQLite, proven equal.
    const h = await run(['migrate', 'hybrid', '--to', target, '--yes', '--json']);
    assert.equal(h.verify.equivalent, true);
    await run(['verify', legacy, target, '--json']);
    await check();

    // 3 cutover: shadow reads agree; the legacy anomaly is counted apart.
    const co = await run(['migrate', 'cutover', '--yes', '--json']);
    assert.equal(co.verify.mismatches, 0);
    assert.equal(co.verify.anomalies, expected.anomalies.lookupListingDisagree);
    assert.equal((await run(['lookup', 'dead-reg-live-bak', '--json'])).pid, 500, 'the hybrid falls back to the target');
    await check();

    // 4 optimize: the pure target, equivalent to the effective legacy view.
    const o = await run(['migrate', 'optimize', '--yes', '--json']);
    assert.equal(o.verify.equivalent, true);
    assert.deepEqual(await listed(), expected.view, 'default profile = the SQLite target');
    await run(['verify', target, legacy, '--json']);
    await check();

    // 5 distribute: into etcd; nodes switch to it.
    const d = await run(['migrate', 'distribute', '--to', etcd, '--yes', '--json']);
    assert.equal(d.verify.equivalent, true);
    assert.deepEqual(await listed(), expected.view, 'default profile = etcd');
    await run(['verify', target, etcd, '--json']);
    await run(['verify', legacy, etcd, '--json']);
    const s = await check();
    assert.equal(s.current, 'distribute');

    // Registrations survive a member's failover.
    await c.killMember(0, 'SIGKILL');
    assert.equal((await run(['lookup', 'alive', '--json'])).pid, 11);
    await run(['verify', target, etcd, '--json']);
    await c.restartMember(0);

    // Rollback returns to the previous phase.
    await run(['migrate', 'rollback', '--yes', '--json']);
    const after = await run(['migrate', 'status', '--json']);
    assert.equal(after.current, 'optimize');
    assert.equal(after.defaultProfile, 'migrate-target');
    // Without --yes and without a terminal, a phase refuses instead of prompting.
    const r = await cli(['migrate', 'distribute', '--to', etcd], { cwd: t.dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pass --yes to confirm/);
  });
});
