/**
 * End to end, as a CI script would do it: a legacy fixture walked through all five phases with
 * the real CLI — wrap, hybrid (into SQLite), cutover, optimize, distribute (into a real 3-member
 * etcd cluster on loopback) — with `verify` / `migrate status --check` green after each phase,
 * the effective view intact at the end, a member failover survived, and a rollback.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { present } from '../support/expect.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture, view } from './support.js';

describe('migration: legacy → sqlite → etcd, all five phases', function () {
  this.timeout(300_000);
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
      expect(r.code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).to.equal(code);
      return r.stdout ? JSON.parse(r.stdout) : undefined;
    };
    const check = async () => {
      const s = await run(['migrate', 'status', '--check', '--json']);
      for (const ch of s.checks) expect(ch.verify.equivalent, `phase ${ch.phase} proof holds`).to.equal(true);
      return s;
    };
    const listed = async () => view((await run(['list', '-A', '--json'])).items);

    // Dry runs change nothing.
    const plan = await run(['migrate', 'wrap', '--from', legacy, '--dry-run', '--json']);
    expect(plan.dryRun).to.equal(true);
    expect((await run(['migrate', 'status', '--json'])).started).to.equal(false);

    // 1 wrap: baseline and anomalies; the service's view is the effective view.
    const w = await run(['migrate', 'wrap', '--from', legacy, '--yes', '--json']);
    expect((w.notes as string[]).join('\n'), "the legacy anomalies, from the backend's inspect()").to.match(
      /^anomalies: \d+ keys with different pids/m,
    );
    expect(w.verify.equivalent).to.equal(true);
    expect(w.record.counts.entries).to.equal(expected.view.length);
    expect(w.record.counts.pidMismatch).to.equal(expected.anomalies.pidMismatch);
    const { deadRegistryRows, deadBackupRows } = expected.anomalies;
    present(deadRegistryRows, 'the fixture counts dead registry rows');
    present(deadBackupRows, 'the fixture counts dead backup rows');
    expect(w.record.counts.deadRegistryRows + w.record.counts.deadBackupRows).to.equal(
      deadRegistryRows + deadBackupRows,
    );
    expect(await listed(), 'default profile = the wrapped legacy store').to.deep.equal(expected.view);
    await check();

    // 2 hybrid: backfill into SQLite, proven equal.
    const h = await run(['migrate', 'hybrid', '--to', target, '--yes', '--json']);
    expect(h.verify.equivalent).to.equal(true);
    await run(['verify', legacy, target, '--json']);
    await check();

    // 3 cutover: shadow reads agree; the legacy anomaly is counted apart.
    const co = await run(['migrate', 'cutover', '--yes', '--accept-changes', '--json']);
    expect(co.verify.mismatches).to.equal(0);
    expect(co.verify.anomalies).to.equal(expected.anomalies.lookupListingDisagree);
    expect(
      (co.verify.changed as Array<{ key: string }>).map((c) => c.key),
      'every changed answer is named',
    ).to.include('dead-reg-live-bak');
    expect((await run(['lookup', 'dead-reg-live-bak', '--json'])).pid, 'the hybrid falls back to the target').to.equal(
      500,
    );
    await check();

    // 4 optimize: the pure target, equivalent to the effective legacy view.
    const o = await run(['migrate', 'optimize', '--yes', '--accept-changes', '--json']);
    expect(o.verify.equivalent).to.equal(true);
    expect((o.notes as string[]).join('\n'), "the target compacted through its backend's compact()").to.match(
      /^analysed and vacuumed .+: \d+ → \d+ bytes/m,
    );
    expect(await listed(), 'default profile = the SQLite target').to.deep.equal(expected.view);
    await run(['verify', target, legacy, '--json']);
    await check();

    // 5 distribute: into etcd; nodes switch to it.
    const d = await run(['migrate', 'distribute', '--to', etcd, '--yes', '--json']);
    expect(d.verify.equivalent).to.equal(true);
    expect(await listed(), 'default profile = etcd').to.deep.equal(expected.view);
    await run(['verify', target, etcd, '--json']);
    await run(['verify', legacy, etcd, '--json']);
    const s = await check();
    expect(s.current).to.equal('distribute');

    // Registrations survive a member's failover.
    await c.killMember(0, 'SIGKILL');
    expect((await run(['lookup', 'alive', '--json'])).pid).to.equal(11);
    await run(['verify', target, etcd, '--json']);
    await c.restartMember(0);

    // Rollback returns to the previous phase.
    await run(['migrate', 'rollback', '--yes', '--json']);
    const after = await run(['migrate', 'status', '--json']);
    expect(after.current).to.equal('optimize');
    expect(after.defaultProfile).to.equal('migrate-target');
    // Without --yes and without a terminal, a phase refuses instead of prompting.
    const r = await cli(['migrate', 'distribute', '--to', etcd], { cwd: t.dir });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/pass --yes to confirm/);
  });
});

describe('issue 12 item 2: cut-over sees every answer that changes (fixtures/legacy/diverged)', function () {
  this.timeout(120_000);
  const t = tempDir('procreg-changed-');
  after(() => t.cleanup());

  it('cutover and optimize name default/mismatch (pid 100 → 200) and fail without --accept-changes', async () => {
    const { path } = fixture('diverged', t.dir);
    const run = async (args: string[], code = 0) => {
      const r = await cli(args, { cwd: t.dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).to.equal(code);
      return r;
    };
    await run(['migrate', 'wrap', '--from', `legacy:${path}`, '--yes']);
    await run(['migrate', 'hybrid', '--to', `sqlite:${join(t.dir, 'new.db')}`, '--yes']);
    const refused = await run(['migrate', 'cutover', '--yes'], 5);
    expect(refused.stderr.trim().split('\n'), 'one line').to.have.length(1);
    expect(refused.stderr).to.match(/default\/mismatch: pid 100@node-a → pid 200@node-a/);
    expect(refused.stderr).to.contain('--accept-changes');
    const before = JSON.parse((await run(['lookup', 'mismatch', '--json'])).stdout) as { pid: number };
    expect(before.pid, 'nothing switched: callers still see the legacy answer').to.equal(100);

    const co = JSON.parse((await run(['migrate', 'cutover', '--yes', '--accept-changes', '--json'])).stdout) as {
      verify: { changed: Array<{ namespace: string; key: string; before: { pid: number }; after: { pid: number } }> };
      notes: string[];
    };
    const changed = co.verify.changed.map((c) => `${c.namespace}/${c.key}:${c.before.pid}->${c.after.pid}`);
    expect(changed).to.include('default/mismatch:100->200');
    expect(co.notes.join('\n')).to.match(/answer changes: default\/mismatch: pid 100@node-a → pid 200@node-a/);

    const op = await run(['migrate', 'optimize', '--yes']);
    expect(op.stdout, 'optimize names the changed answer too').to.match(/answer changes: default\/mismatch/);
    const after = JSON.parse((await run(['lookup', 'mismatch', '--json'])).stdout) as { pid: number };
    expect(after.pid).to.equal(200);
  });
});
