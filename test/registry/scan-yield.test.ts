/** Long scans yield to the event loop and still answer exactly (issue 14 §7): SQLite, library and CLI. */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';

const N = 50_000;
const NODE = 'scan-node';

/** Run `fn`, counting the setImmediate callbacks that ran before it ended (0: it never yielded). */
async function ticksDuring<T>(fn: () => Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  let done = false;
  const tick = () => {
    if (done) return;
    ticks++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const value = await fn();
  done = true;
  return { value, ticks };
}

describe('long scans yield (issue 14 §7)', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let file: string;
  before(async () => {
    sb = sandbox();
    file = join(sb.dir, 'scan.db');
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    const p = await spawnSleeper();
    const e = reg.makeEntry('probe', p.pid);
    await reg.close();
    const db = new Database(file);
    const ins = db.prepare(
      `INSERT INTO registrations (namespace, key, pid, node, meta, registered_at, updated_at, pid_start) VALUES ('default', ?, ?, ?, ?, 1, 1, ?)`,
    );
    db.transaction(() => {
      for (let i = 0; i < N; i++)
        ins.run(
          `k${String(i).padStart(6, '0')}`,
          p.pid,
          NODE,
          JSON.stringify({ i, rare: i % 5000 === 0 ? 'y' : 'n' }),
          e.pidStart,
        );
    })();
    db.close();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('library: list({where}) on an unindexed field yields between slices and returns every match in order', async () => {
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    try {
      const { value, ticks } = await ticksDuring(() => reg.list({ where: [['rare', 'y']] }));
      expect(value.items.map((e) => e.key)).to.deep.equal(
        Array.from({ length: N / 5000 }, (_, j) => `k${String(j * 5000).padStart(6, '0')}`),
      );
      expect(value.next).to.equal(undefined);
      expect(ticks, 'the loop ran during the scan').to.be.greaterThan(0);
    } finally {
      await reg.close();
    }
  });

  it('library: entries() and the SQLite digest yield while they read everything', async () => {
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: NODE });
    try {
      const all = await ticksDuring(async () => {
        let n = 0;
        for await (const _ of reg.entries()) n++;
        return n;
      });
      expect(all.value).to.equal(N);
      expect(all.ticks).to.be.greaterThan(0);
      const d = await ticksDuring(async () => reg.backend.digest!('default', 16));
      expect(d.value.counts.reduce((n, c) => n + c, 0)).to.equal(N);
      expect(d.ticks).to.be.greaterThan(0);
    } finally {
      await reg.close();
    }
  });

  it('CLI: `registry list --where` on an unindexed field returns every match across the scan slices', () => {
    const env = { ...sb.env, REGISTRY_NODE: NODE };
    const r = sb.run(['list', '--where', 'rare=y', '--json', '-b', `sqlite:${file}`], { env });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<{ items: Array<{ key: string }> }>().items).to.have.length(N / 5000);
  });
});
