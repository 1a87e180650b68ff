/**
 * Runtime backend switching: a node over memory moves to a SQLite file while clients keep
 * registering, updating and unregistering through it. No operation may fail, the final state must
 * be exactly what the acknowledged operations say, the change feed must run on across the flip
 * with increasing revisions and replay to the same state, and the file must hold it afterwards.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { ChangeEvent, Meta } from '../../src/backends/contract.js';
import type { RemoteBackend } from '../../src/backends/remote.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { present } from '../support/expect.js';
import { killAllSleepers, type Sleeper, spawnSleepers, waitFor } from '../support/processes.js';
import { sandbox } from '../support/cli.js';
import { startNode } from '../support/node.js';
import { tempDir } from '../support/tmp.js';

const t = tempDir();

describe('node switch', function () {
  this.timeout(120_000);
  after(async () => {
    await killAllSleepers();
    t.cleanup();
  });

  it('memory → sqlite under load: nothing lost, nothing failed, the feed runs on', async () => {
    const node = await startNode('memory:');
    const client = await ProcessRegistry.open({ backend: node.url, namespace: 'sw', cleanupInterval: 0 });
    const remote = client.backend as RemoteBackend;
    const procs = await spawnSleepers(4);
    const events: ChangeEvent[] = [];
    const feedErrors: Error[] = [];
    const stopWatch = await remote.watch(
      { namespace: 'sw' },
      (e) => events.push(e),
      (e) => feedErrors.push(e),
    );
    const expected = new Map<string, { pid: number; meta: Meta }>();
    const failures: unknown[] = [];
    let ops = 0;
    let stop = false;
    const worker = async ({ pid }: Sleeper, w: number) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}/k${i % 25}`;
        const have = expected.has(key);
        try {
          if (!have || i % 5 === 0) {
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
    // A larger namespace beside it, so the backfill takes a while and dual writes land during it.
    const bulk = Array.from({ length: 20_000 }, (_, i) => ({
      key: `b${i}`,
      pid: 100 + (i % 50),
      node: 'elsewhere',
      namespace: 'big',
    }));
    for (let i = 0; i < bulk.length; i += 5000)
      expect((await client.bulkRegister(bulk.slice(i, i + 5000))).every((r) => r.ok)).to.be.ok;
    const workers = procs.map((p, w) => worker(p, w));
    await waitFor(() => ops > 300, 20_000, 'load to start');
    const file = join(t.dir, 'switched.db');
    const report = (await remote.switchNode(`sqlite:${file}`)) as {
      from: string;
      to: string;
      copied: number;
      entries: number;
      revision: number;
      pausedMs: number;
      durationMs: number;
    };
    const opsAtFlip = ops;
    await waitFor(() => ops > opsAtFlip + 300, 20_000, 'load to go on after the flip');
    stop = true;
    await Promise.all(workers);
    expect(failures, 'no operation failed').to.deep.equal([]);
    expect(report.from).to.equal('memory:');
    expect(report.to).to.equal(`sqlite:${file}`);
    expect(report.copied >= 20_000, `copied ${report.copied}`).to.be.ok;
    // Durations in milliseconds to two decimals (a report, not 2.627536999999961).
    for (const ms of [report.pausedMs, report.durationMs]) expect(Math.round(ms * 100) / 100).to.equal(ms);
    expect(report.durationMs).to.be.at.least(report.pausedMs);
    expect(await client.count({ namespace: 'big' })).to.equal(20_000);
    expect(node.registry.backend.url).to.equal(`sqlite:${file}`);

    // Final state through the node = the acknowledged operations.
    const got = new Map<string, { pid: number; meta: Meta }>();
    for await (const e of client.entries()) got.set(e.key, { pid: e.pid, meta: e.meta });
    expect(got).to.deep.equal(expected);

    // The feed: revisions increase through the flip, and replaying it gives the same state.
    await waitFor(
      async () => {
        const last = events.at(-1);
        return last !== undefined && last.revision >= ((await node.nodeInfo()).revision ?? 0);
      },
      10_000,
      'the feed to catch up',
    );
    expect(feedErrors).to.deep.equal([]);
    let prev: ChangeEvent | undefined;
    for (const e of events) {
      if (prev) expect(e.revision > prev.revision, `revision ${e.revision} after ${prev.revision}`).to.be.ok;
      prev = e;
    }
    expect(
      events.some((e) => e.revision <= report.revision) && events.some((e) => e.revision > report.revision),
      'events on both sides of the flip',
    ).to.be.ok;
    const replay = new Map<string, { pid: number; meta: Meta }>();
    for (const e of events) {
      if (e.type === 'put') {
        present(e.entry, `a put event carries its entry (revision ${e.revision})`);
        replay.set(e.key, { pid: e.entry.pid, meta: e.entry.meta });
      } else replay.delete(e.key);
    }
    expect(replay).to.deep.equal(expected);
    // A resume from before the flip is refused as compacted (list again).
    const errs: Error[] = [];
    await remote.watch(
      { namespace: 'sw', sinceRevision: 1 },
      () => undefined,
      (e) => errs.push(e),
    );
    expect(String(errs[0]?.message)).to.match(/compacted/);

    stopWatch();
    await client.close();
    await node.close();
    // The file holds it.
    const direct = await ProcessRegistry.open({ backend: `sqlite:${file}`, namespace: 'sw', cleanupInterval: 0 });
    const onDisk = new Map<string, { pid: number; meta: Meta }>();
    for await (const e of direct.entries()) onDisk.set(e.key, { pid: e.pid, meta: e.meta });
    await direct.close();
    expect(onDisk).to.deep.equal(expected);
  });

  it('refuses a switch to another node (remote kind), and the CLI drives a switch', async () => {
    const node = await startNode('memory:');
    try {
      const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
      const err = await (client.backend as RemoteBackend).switchNode(node.url).catch((e) => e);
      expect(err.code).to.equal('INVALID_INPUT');
      expect(err.message).to.match(/cannot switch/);
      expect(node.registry.backend.url, 'still on memory').to.equal('memory:');
      await client.close();
      const file = join(t.dir, 'cli.db');
      // Asynchronously: the node runs in this process and must keep answering.
      const sb = sandbox();
      const r = await sb.start(['node', 'switch', '--to', `sqlite:${file}`, '-b', node.url, '--json']).done;
      sb.cleanup();
      expect(r.code, r.stderr).to.equal(0);
      expect(r.json<{ to: string }>().to).to.equal(`sqlite:${file}`);
      expect(node.registry.backend.url).to.equal(`sqlite:${file}`);
    } finally {
      await node.close();
    }
  });
});
