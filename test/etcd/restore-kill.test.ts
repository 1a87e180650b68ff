/**
 * Issue 12 item 8 on etcd: a real `registry restore --mode replace` client is SIGKILLed at random
 * points (staging, after its commit point) against a real 3-member cluster. Before the commit
 * point the store keeps exactly the old state; after it the restore is decided. The next command
 * says which (`registry health`, `registry restore --resume`), and after `--resume` the store is
 * exactly the old or exactly the new state.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { sandbox, type Sandbox } from '../support/cli.js';
import { type EtcdCluster, startEtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/processes.js';
import { type DumpState, sigkill, storeState, writeState } from '../support/restore.js';

const N = 20_000;

describe('etcd: restore is all or nothing under SIGKILL of the client', function () {
  this.timeout(300_000);
  let sb: Sandbox;
  let cluster: EtcdCluster;
  let etcd: Etcd3;
  let url: string;
  let a: DumpState;
  let b: DumpState;
  before(async () => {
    sb = sandbox();
    cluster = await startEtcdCluster({ members: 3 });
    url = cluster.url('/rk');
    etcd = new Etcd3({ hosts: cluster.endpoints.map((h) => `http://${h}`) });
    a = writeState(join(sb.dir, 'a.ndjson'), N, 0, 'a');
    b = writeState(join(sb.dir, 'b.ndjson'), N, N / 2, 'b');
  });
  after(async () => {
    etcd?.close();
    await cluster?.stop();
    sb?.cleanup();
  });

  const cli = (args: string[]) => sb.start(args).done;
  const journal = async () => {
    const v = await etcd.get('/rk/x/journal').string();
    return v ? (JSON.parse(v) as { id: string; state: string }) : undefined;
  };
  const staged = () => etcd.getAll().prefix('/rk/x/s/').count();

  it('issue 12 item 8: killed while staging → old state; killed after the commit point → --resume completes the new state; health says which', async () => {
    const first = await cli(['restore', a.file, '--mode', 'replace', '--yes', '-b', url]);
    expect(first.code, first.stderr).to.equal(0);
    expect(await storeState(url)).to.deep.equal({ count: a.count, digest: a.digest });
    let current = a;
    const outcomes: string[] = [];
    const stageKeys = Math.ceil(N / 500);
    const points: Array<{ phase: 'staging' | 'applying'; share: number }> = [
      { phase: 'staging', share: Math.random() },
      { phase: 'applying', share: Math.random() },
      { phase: 'applying', share: Math.random() },
    ];
    for (const point of points) {
      const target = current === a ? b : a;
      const run = sb.start(['restore', target.file, '--mode', 'replace', '--yes', '-b', url]);
      const started = current.count;
      let low = Infinity;
      await waitFor(
        async () => {
          if (run.child.exitCode !== null) return true;
          const j = await journal();
          // No journal and no stage, yet the registrations changed: a client writing the live keys
          // directly (or one that already finished): kill now.
          if (!j && (await staged()) === 0 && (await etcd.getAll().prefix('/rk/r/').count()) !== started) return true;
          if (point.phase === 'staging') return (await staged()) >= Math.max(1, Math.floor(point.share * stageKeys));
          if (j?.state !== 'applying') return false;
          // Part way through applying: share < 0.5 kills during the clear of the old entries,
          // share >= 0.5 during the writes of the new ones (after the count went down to 0).
          const n = await etcd.getAll().prefix('/rk/r/').count();
          low = Math.min(low, n);
          if (point.share < 0.5) return n < started && n <= started * (1 - 2 * point.share);
          return low === 0 && n > 0 && n >= (point.share - 0.5) * 2 * target.count;
        },
        120_000,
        `restore progress (${point.phase} ${point.share.toFixed(2)})`,
      );
      await sigkill(run.child);
      await run.done;
      // The killed client's claim (journal while staging, applier while applying) is on a lease:
      // it lapses within its TTL (5 s). Until then the store says a restore is running.
      await waitFor(
        async () => !(await etcd.get('/rk/x/applier').string()) && (await journal())?.state !== 'staging',
        20_000,
        "the killed client's lease to lapse",
      );
      const j = await journal();
      const health = await cli(['health', '--json', '-b', url]);
      const h = health.json<{ backends: Array<{ status: string; health: { restore?: string } }> }>().backends[0];
      const resume = await cli(['restore', '--resume', '-b', url]);
      expect(resume.code, resume.stderr).to.equal(0);
      const state = await storeState(url);
      if (j?.state === 'applying') {
        // Past the commit point: decided; health names it, --resume completes it.
        expect(h?.health.restore, health.stdout).to.match(/interrupted after its commit point/);
        expect(h?.status).to.equal('degraded');
        expect(resume.stdout).to.match(/had passed its commit point: completed/);
        expect(state, 'after --resume the store is exactly the new state').to.deep.equal({
          count: target.count,
          digest: target.digest,
        });
        outcomes.push(`${point.phase}: decided, completed`);
        current = target;
      } else if (state.digest === target.digest) {
        // Finished (journal gone) before the kill landed.
        expect(state.count).to.equal(target.count);
        outcomes.push(`${point.phase}: finished before the kill`);
        current = target;
      } else {
        expect(state, 'before the commit point the store is exactly the old state').to.deep.equal({
          count: current.count,
          digest: current.digest,
        });
        expect(resume.stdout).to.match(
          /had not reached its commit point: its staged data was discarded|no interrupted restore/,
        );
        expect(await staged(), 'the orphaned stage is gone').to.equal(0);
        outcomes.push(`${point.phase}: old`);
      }
      expect(await journal()).to.equal(undefined);
    }
    console.log(`      kill outcomes: ${outcomes.join(', ')}`);
    expect(
      outcomes.filter((o) => o.includes('decided')).length,
      'a kill landed after the commit point',
    ).to.be.greaterThan(0);
  });
});
