/**
 * Runtime switching across kinds: a real node moves SQLite → etcd (a 3-member cluster), etcd →
 * SQLite, memory → SQLite and SQLite → SQLite while clients keep registering, updating and
 * unregistering through it. No operation may fail, every acknowledged write must be there
 * afterwards, and a feed consumer must see revisions increasing through the flip and replay to the
 * same state.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { ChangeEvent, Meta } from '../../src/backends/contract.js';
import type { RemoteBackend } from '../../src/backends/remote.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { killAllSleepers, type Sleeper, spawnSleepers, waitFor } from '../support/processes.js';
import { startNode } from '../support/node.js';
import { tempDir } from '../support/tmp.js';

const t = tempDir();
type State = Map<string, { pid: number; meta: Meta }>;

/** Start a node on `from`, load it, switch it to `to` under load, and check everything. */
async function switchUnderLoad(from: string, to: string, procs: Sleeper[]): Promise<void> {
  const node = await startNode(from);
  const client = await ProcessRegistry.open({ backend: node.url, namespace: 'sw', cleanupInterval: 0 });
  try {
    const remote = client.backend as RemoteBackend;
    const events: ChangeEvent[] = [];
    const feedErrors: Error[] = [];
    const stopWatch = await remote.watch(
      { namespace: 'sw' },
      (e) => events.push(e),
      (e) => feedErrors.push(e),
    );
    // Some entries beside the load, so the backfill has something to copy while dual writes land.
    const bulk = Array.from({ length: 3000 }, (_, i) => ({ key: `b${i}`, pid: 100 + (i % 50), node: 'elsewhere' }));
    for (let i = 0; i < bulk.length; i += 1000)
      expect((await client.bulkRegister(bulk.slice(i, i + 1000))).every((r) => r.ok)).to.be.ok;
    const expected: State = new Map();
    for (const b of bulk) expected.set(b.key, { pid: b.pid, meta: {} });
    const failures: unknown[] = [];
    let ops = 0;
    let stop = false;
    const worker = async ({ pid }: Sleeper, w: number) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}/k${i % 20}`;
        try {
          if (!expected.has(key) || i % 5 === 0) {
            await client.register(key, pid, { v: i });
            expected.set(key, { pid, meta: { v: i } });
          } else if (i % 3 === 0) {
            await client.unregister(key);
            expected.delete(key);
          } else {
            const e = await client.updateMetadata(key, { u: i }, { merge: true });
            expected.set(key, { pid, meta: e.meta });
          }
          ops++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const workers = procs.map((p, w) => worker(p, w));
    await waitFor(() => ops > 100, 30_000, 'load to start');
    const report = (await remote.switchNode(to)) as { from: string; to: string; copied: number; revision: number };
    const atFlip = ops;
    await waitFor(() => ops > atFlip + 100, 30_000, 'load to go on after the flip');
    stop = true;
    await Promise.all(workers);

    expect(failures, 'no operation failed').to.deep.equal([]);
    expect(node.registry.backend.url).to.equal(report.to);
    expect(report.copied, 'the backfill copied the bulk entries').to.be.at.least(3000);
    const got: State = new Map();
    for await (const e of client.entries()) got.set(e.key, { pid: e.pid, meta: e.meta });
    expect(got, 'every acknowledged write is there').to.deep.equal(expected);

    // The feed consumer: increasing revisions through the flip, replaying to the same state.
    const replay = (): State => {
      const r: State = new Map();
      for (const e of events)
        if (e.type === 'put') r.set(e.key, { pid: e.entry!.pid, meta: e.entry!.meta });
        else r.delete(e.key);
      return r;
    };
    const same = (a: State, b: State) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
    await waitFor(() => same(replay(), expected), 20_000, 'the feed to replay to the final state');
    expect(feedErrors).to.deep.equal([]);
    // Never backwards (one etcd transaction — a bulk register — puts many keys at one revision).
    for (let i = 1; i < events.length; i++)
      expect(events[i]!.revision, `event ${i} after ${events[i - 1]!.revision}`).to.be.at.least(
        events[i - 1]!.revision,
      );
    expect(
      events.some((e) => e.revision <= report.revision),
      'events before the flip',
    ).to.be.ok;
    expect(
      events.some((e) => e.revision > report.revision),
      'events after the flip',
    ).to.be.ok;
    stopWatch();
  } finally {
    await client.close();
    await node.close();
  }
  // The new store holds it without the node.
  const direct = await ProcessRegistry.open({ backend: to, namespace: 'sw', cleanupInterval: 0 });
  try {
    expect(await direct.count()).to.be.at.least(3000);
  } finally {
    await direct.close();
  }
}

describe('node switch across kinds', function () {
  this.timeout(180_000);
  let c: EtcdCluster;
  let procs: Sleeper[];
  before(async () => {
    c = await startEtcdCluster({ members: 3 });
    procs = await spawnSleepers(4);
  });
  after(async () => {
    await killAllSleepers();
    await c?.stop();
    t.cleanup();
  });

  it('sqlite → etcd (3 members) under load', async () => {
    await switchUnderLoad(`sqlite:${join(t.dir, 'a.db')}`, c.url('/to-etcd'), procs);
  });

  it('etcd → sqlite under load', async () => {
    await switchUnderLoad(c.url('/from-etcd'), `sqlite:${join(t.dir, 'b.db')}`, procs);
  });

  it('memory → sqlite under load', async () => {
    await switchUnderLoad('memory:', `sqlite:${join(t.dir, 'c.db')}`, procs);
  });

  it('sqlite → sqlite under load', async () => {
    await switchUnderLoad(`sqlite:${join(t.dir, 'd1.db')}`, `sqlite:${join(t.dir, 'd2.db')}`, procs);
  });
});
