/**
 * etcd histories checked linearizable (issue 13): 12 clients, 4 keys, a bounded run each
 * (SCENARIO_MS, default 14 s; `npm run soak` runs them longer), with the faults of the issue.
 * A violation fails with a minimal witness; the seed is printed (SCENARIO_SEED replays the choices).
 */
import { expect } from 'chai';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { assertLinearizable } from '../support/linearizability.js';
import { killAllSleepers, spawnSleepers, waitFor } from '../support/processes.js';
import { runWorkload, scenarioEnv, type WorkloadResult } from '../support/workload.js';

const KEYS = ['k1', 'k2', 'k3', 'k4'];
const CLIENTS = 12;

/** The member index the cluster's members agree is leader (status over the gRPC gateway). */
async function leaderIndex(c: EtcdCluster): Promise<number | undefined> {
  const st = await Promise.all(
    c.endpoints.map(async (ep, i) => {
      if (!c.running(i)) return undefined;
      try {
        const res = await fetch(`http://${ep}/v3/maintenance/status`, {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(1000),
        });
        const s = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        return { i, id: s.header?.member_id, leader: s.leader };
      } catch {
        return undefined;
      }
    }),
  );
  const up = st.filter((x) => x !== undefined);
  const leader = up.find((x) => x.leader && x.leader !== '0')?.leader;
  return up.find((x) => x.id === leader)?.i;
}

async function leaderNow(c: EtcdCluster): Promise<number> {
  let li: number | undefined;
  await waitFor(async () => (li = await leaderIndex(c)) !== undefined, 30_000, 'an etcd leader');
  if (li === undefined) throw new Error('no leader');
  return li;
}

/** The etcd backends' exactly-once counters, summed (src/backends/etcd.ts `writeStats`). */
function writeStats(regs: ProcessRegistry[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const r of regs) {
    const s = (r.backend as { writeStats?: Record<string, number> }).writeStats ?? {};
    for (const [k, v] of Object.entries(s)) sum[k] = (sum[k] ?? 0) + v;
  }
  return sum;
}

function report(what: string, r: WorkloadResult, seed: number, regs: ProcessRegistry[]): void {
  const res = assertLinearizable(r.recorder.ops, `${what} (SCENARIO_SEED=${seed})`);
  const errs = [...r.errors].map(([m, n]) => `${n}× ${m}`).join('; ');
  const ws = Object.entries(writeStats(regs))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `      ${what}: ${res.operations} operations on ${res.keys} keys linearizable (${res.unknown} of unknown outcome${errs ? `: ${errs}` : ''}; lost answers: ${ws}; seed ${seed})`,
  );
}

describe('linearizability: etcd (3 members)', function () {
  this.timeout(180_000);
  let c: EtcdCluster;
  let pids: number[];
  const regs: ProcessRegistry[] = [];

  before(async () => {
    c = await startEtcdCluster({ members: 3 });
    pids = (await spawnSleepers(3)).map((s) => s.pid);
  });
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close().catch(() => undefined)));
  });
  after(async () => {
    await killAllSleepers();
    await c?.stop();
  });

  it('each client on a different member, no faults', async () => {
    const { durationMs, seed } = scenarioEnv(12_000);
    for (let i = 0; i < CLIENTS; i++) {
      const ep = c.endpoints[i % c.endpoints.length];
      regs.push(await ProcessRegistry.open({ backend: `etcd://${ep}/lin-members`, cleanupInterval: 0 }));
    }
    const r = await runWorkload({ clients: regs, keys: KEYS, pids, durationMs, seed });
    report('etcd, a member per client', r, seed, regs);
    expect(r.recorder.ops.length).to.be.above(CLIENTS * 10);
  });

  it('SIGKILL of a follower, then of the leader', async () => {
    const { durationMs, seed } = scenarioEnv(16_000);
    for (let i = 0; i < CLIENTS; i++)
      regs.push(await ProcessRegistry.open({ backend: c.url('/lin-kill'), cleanupInterval: 0 }));
    const t0 = Date.now();
    const run = runWorkload({ clients: regs, keys: KEYS, pids, durationMs, seed });
    const at = (f: number) => new Promise((res) => setTimeout(res, Math.max(0, t0 + durationMs * f - Date.now())));
    await at(0.15);
    const leader = await leaderNow(c);
    const follower = [0, 1, 2].find((i) => i !== leader) ?? 0;
    await c.killMember(follower, 'SIGKILL');
    await at(0.35);
    await c.restartMember(follower);
    await at(0.5);
    const leader2 = await leaderNow(c);
    await c.killMember(leader2, 'SIGKILL');
    await at(0.7);
    await c.restartMember(leader2);
    const r = await run;
    await c.waitHealthy();
    report('etcd, follower then leader SIGKILLed', r, seed, regs);
  });

  it('SIGSTOP of the leader past the election timeout, within the lease TTL (session leases)', async () => {
    const { durationMs, seed } = scenarioEnv(14_000);
    for (let i = 0; i < CLIENTS; i++)
      regs.push(
        await ProcessRegistry.open({
          backend: c.url('/lin-stop'),
          cleanupInterval: 0,
          backendOpts: { lease: 'session', leaseTtl: 10 },
        }),
      );
    const t0 = Date.now();
    const run = runWorkload({ clients: regs, keys: KEYS, pids, durationMs, seed });
    await new Promise((res) => setTimeout(res, Math.max(0, t0 + durationMs * 0.25 - Date.now())));
    const leader = await leaderNow(c);
    const pid = c.pid(leader);
    if (pid === undefined) throw new Error('leader has no pid');
    process.kill(pid, 'SIGSTOP');
    try {
      // Past the election timeout (1 s): the others elect a new leader; well within the 10 s TTL.
      await waitFor(
        async () => {
          const li = await leaderIndex(c);
          return li !== undefined && li !== leader;
        },
        20_000,
        'a new leader while the old one is stopped',
      );
      await new Promise((res) => setTimeout(res, 3000));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = await run;
    await c.waitHealthy();
    // The lease keys survived the pause: a lease expiry would show as a key vanishing in the history.
    report('etcd, leader SIGSTOPped 3 s past a new election', r, seed, regs);
  });
});
