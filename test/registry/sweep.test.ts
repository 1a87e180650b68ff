/** The incremental sweep (issue 14 §7, src/registry/sweep.ts) on a real SQLite file, library and CLI. */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sweepProcesses } from '../../src/registry/sweep.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { deadPid, killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const NODE = 'sweep-node';

/** Raw rows straight into the file: `n` entries of (node, pid, pidStart), keys prefixed `prefix`. */
function seed(file: string, prefix: string, node: string, pid: number, pidStart: number | null, n: number): void {
  const db = new Database(file);
  const ins = db.prepare(
    `INSERT INTO registrations (namespace, key, pid, node, meta, registered_at, updated_at, pid_start) VALUES ('default', ?, ?, ?, '{}', 1, 1, ?)`,
  );
  db.transaction(() => {
    for (let i = 0; i < n; i++) ins.run(`${prefix}-${i}`, pid, node, pidStart);
  })();
  db.close();
}

/** A store holding 2 live processes (3 entries), many dead ones of this node, and another node's dead entry. */
async function deadAndAlive(file: string): Promise<{ live: number; dead: number; deadProcs: number }> {
  const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
  const a = await spawnSleeper();
  const b = await spawnSleeper();
  await reg.register('live-a1', a.pid);
  await reg.register('live-a2', a.pid);
  await reg.register('live-b', b.pid);
  await reg.close();
  // A dead pid without a start time, holding more entries than one delete removes (1000).
  seed(file, 'gone', NODE, await deadPid(), null, 2500);
  // Live pids with another start time: reused pids, so dead registrations; 150 processes.
  for (let s = 1; s <= 150; s++) seed(file, `reused-${s}`, NODE, a.pid, s, 2);
  seed(file, 'far', 'other-node', await deadPid(), null, 5);
  return { live: 3, dead: 2500 + 300, deadProcs: 151 };
}

describe('sweep: incremental, in slices that yield (issue 14 §7)', () => {
  const t = tempDir('procreg-sweep-');
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
    t.cleanup();
  });

  it('cleanup() removes every entry of the dead processes, chunk by chunk, and keeps the live and other nodes', async () => {
    const file = join(t.dir, 'lib.db');
    const { live, dead, deadProcs } = await deadAndAlive(file);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    try {
      const r = await reg.cleanup();
      expect(r.removed).to.equal(dead);
      expect(r.checked, 'each process judged once').to.equal(deadProcs + 2);
      expect(await reg.backend.count('default'), 'the live entries and the other node’s').to.equal(live + 5);
      expect((await reg.list()).items.map((e) => e.key)).to.include.members(['live-a1', 'live-a2', 'live-b']);
      expect((await reg.cleanup()).removed, 'a second sweep finds nothing').to.equal(0);
    } finally {
      await reg.close();
    }
  });

  it('sweepProcesses yields to the event loop between slices (a setImmediate runs before it ends)', async () => {
    const file = join(t.dir, 'yield.db');
    const { dead } = await deadAndAlive(file);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    try {
      let ranBetween = 0;
      let finished = false;
      const tick = () => {
        if (finished) return;
        ranBetween++;
        setImmediate(tick);
      };
      setImmediate(tick);
      const live = new Set<string>();
      for (const k of ['live-a1', 'live-b']) {
        const e = (await reg.backend.lookup('default', k))!;
        live.add(`${e.pid}/${e.pidStart}`);
      }
      const r = await sweepProcesses(reg.backend, NODE, (pid, start) => live.has(`${pid}/${start}`), { sliceMs: 0 });
      finished = true;
      expect(r.removed).to.equal(dead);
      expect(ranBetween, 'the loop ran between slices').to.be.greaterThan(10);
    } finally {
      await reg.close();
    }
  });

  it('processesAfter walks the processes of a node in index order, a slice at a time', async () => {
    const file = join(t.dir, 'walk.db');
    await deadAndAlive(file);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    try {
      const b = reg.backend;
      const all = await b.processes!(NODE);
      const walked: Array<{ pid: number; pidStart: number | null }> = [];
      for (let after: (typeof walked)[number] | undefined; ;) {
        const slice = await b.processesAfter!(NODE, after, 7);
        walked.push(...slice);
        if (slice.length < 7) break;
        after = slice.at(-1);
      }
      expect(walked).to.deep.equal(all.map((p) => ({ pid: p.pid, pidStart: p.pidStart })));
      expect(await b.processesAfter!('no-such-node', undefined, 7)).to.deep.equal([]);
    } finally {
      await reg.close();
    }
  });

  it('CLI: `registry cleanup` sweeps a store of many dead processes through the incremental sweep', async () => {
    const file = join(t.dir, 'cli.db');
    const { live, dead, deadProcs } = await deadAndAlive(file);
    const env = { ...sb.env, REGISTRY_NODE: NODE };
    const b = ['-b', `sqlite:${file}`];
    const c = sb.run(['cleanup', '--json', ...b], { env });
    expect(c.code, c.stderr).to.equal(0);
    const r = c.json<{ removed: number; checked: number }>();
    expect(r).to.include({ removed: dead, checked: deadProcs + 2 });
    expect(sb.run(['count', ...b], { env }).stdout.trim()).to.equal(String(live + 5));
  });
});
