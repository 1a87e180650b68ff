/**
 * healthCheck of the local backends against the truth: real processes spawned and killed, and the
 * SQLite counting shortcut (skip-scan of the process index, dead ranges only, GROUP BY fallback)
 * checked row by row against a brute-force judgement of every stored registration.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { loadBetterSqlite } from '../../src/backends/sqlite.js';
import { dropProcCounts } from '../../src/backends/sqlite-counts.js';
import { procInfo } from '../../src/registry/liveness.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleepers, waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

describe('health: backends', function () {
  const NODE = 'health-node';
  // Above 2^22, the largest pid_max Linux allows: never a running process.
  const NEVER = 4_194_304 + 1000;

  after(() => killAllSleepers());

  /** Insert rows straight into a procreg SQLite file (fixtures the service would refuse: dead pids). */
  function insertRaw(
    path: string,
    rows: Array<[ns: string, key: string, pid: number, node: string, pidStart: number | null]>,
    counts = false,
  ) {
    const Database = loadBetterSqlite();
    const db = new Database(path);
    const ins = db.prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const now = Date.now();
    db.transaction(() => {
      for (const [ns, key, pid, node, start] of rows) ins.run(ns, key, pid, node, '{}', now, now, start);
    })();
    // Without the per-process counts (a store from before them, opened read-only): the index path.
    if (!counts) dropProcCounts(db);
    db.close();
  }

  /** Judge every stored row one by one, the slow obvious way. */
  async function bruteForce(reg: ProcessRegistry): Promise<{ alive: number; dead: number }> {
    let alive = 0;
    let dead = 0;
    for (const ns of await reg.backend.namespaces()) {
      let after: string | undefined;
      for (;;) {
        const page = await reg.backend.list(ns, { after, limit: 1000 });
        for (const e of page.items) {
          if (reg.isAlive(e)) alive++;
          else dead++;
        }
        if (!page.next) break;
        after = page.next;
      }
    }
    return { alive, dead };
  }

  describe('sqlite healthCheck counts', () => {
    const t = tempDir('procreg-health-');
    after(() => t.cleanup());

    async function fixture(name: string, processes: number, perProcess: number, counts = false) {
      const path = join(t.dir, `${name}.db`);
      const setup = await ProcessRegistry.open({ backend: `sqlite:${path}`, cleanupInterval: 0, nodeName: NODE });
      await setup.close();
      const me = procInfo(process.pid)!.start;
      const rows: Array<[string, string, number, string, number | null]> = [];
      let k = 0;
      const add = (pid: number, node: string, start: number | null, n: number) => {
        for (let i = 0; i < n; i++) rows.push([`ns${k % 3}`, `key-${k++}`, pid, node, start]);
      };
      add(process.pid, NODE, me, 50); // alive, start checked
      add(process.pid, NODE, null, 7); // alive, no start recorded
      add(process.pid, NODE, me - 1, 11); // the pid was reused: a different, dead process
      add(process.pid, NODE, me + 1, 3);
      add(1234, 'far-node', null, 13); // another node's: judged there, counted alive here
      for (let p = 0; p < processes; p++) add(NEVER + p, NODE, p % 2 ? null : 100 + p, perProcess);
      insertRaw(path, rows, counts);
      const reg = await ProcessRegistry.open({
        backend: `sqlite:${path}`,
        backendOpts: { readonly: true },
        cleanupInterval: 0,
        nodeName: NODE,
      });
      return { reg, total: rows.length };
    }

    /** healthCheck, asserted equal to the brute-force count, with the method and process count expected. */
    async function checked(name: string, processes: number, perProcess: number, method: string) {
      const { reg, total } = await fixture(name, processes, perProcess, method === 'counts');
      const h = await reg.healthCheck();
      const truth = await bruteForce(reg);
      await reg.close();
      expect(h.countMethod).to.equal(method);
      expect(h.registrations).to.equal(total);
      expect({ alive: h.alive, dead: h.dead }).to.deep.equal(truth);
      expect(h.processes, 'four of this pid (by start), one of another node, the dead ones').to.equal(
        4 + 1 + processes,
      );
      return h;
    }

    it('skip-scan: equal to judging every row (pid reuse, missing starts, other nodes, several namespaces)', async () => {
      const h = await checked('small', 40, 5, 'skip-scan');
      expect(h.dead).to.equal(14 + 40 * 5);
      expect(h.status, `${h.dead}/${h.registrations} dead`).to.equal('unhealthy');
      expect(h.reasons.join('\n')).to.match(/% of registrations are dead \(>= 30%\)/);
    });

    it('per-process counts (kept by triggers): equal to judging every row, one row per (namespace, process) read', async () => {
      const h = await checked('counted', 4200, 1, 'counts');
      expect(h.dead).to.equal(14 + 4200);
    });

    it('more processes than max(1024, rows / 64): the GROUP BY fallback gives the same counts', async () => {
      const h = await checked('many', 4200, 1, 'group-by');
      expect(h.dead).to.equal(14 + 4200);
    });

    it('reports the file figures', async () => {
      const { reg } = await fixture('fields', 1, 1);
      const h = await reg.healthCheck();
      expect(h.journalMode).to.equal('wal');
      expect(h.file).to.equal(join(t.dir, 'fields.db'));
      expect((h.fileBytes as number) > 0 && (h.pageCount as number) > 0 && (h.pageSize as number) >= 512).to.be.ok;
      expect(typeof h.walBytes).to.equal('number');
      expect(typeof h.lastCheckpoint === 'number' && h.lastCheckpoint <= Date.now()).to.be.ok;
      expect(h.lastCleanup, 'never swept').to.equal(null);
      await reg.close();
      const rw = await ProcessRegistry.open({
        backend: `sqlite:${join(t.dir, 'fields.db')}`,
        cleanupInterval: 0,
        nodeName: NODE,
      });
      const sweep = await rw.cleanup();
      expect((await rw.healthCheck()).lastCleanup, 'a sweep is remembered in the file').to.equal(sweep.at);
      await rw.close();
    });
  });

  describe('memory healthCheck with real processes', () => {
    it('healthy → degraded at 10 % dead → unhealthy at 30 %; a sweep brings it back', async () => {
      const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
      const procs = await spawnSleepers(10);
      for (const [i, p] of procs.entries()) for (let j = 0; j < 4; j++) await reg.register(`w${i}-${j}`, p.pid);
      const status = async () => (await reg.healthCheck()).status;
      expect(await status()).to.equal('healthy');
      await procs[0].kill(); // 4/40 = 10 %
      await waitFor(async () => (await status()) === 'degraded', 10_000, 'degraded at 10 % dead');
      const h = await reg.healthCheck();
      expect([h.alive, h.dead]).to.deep.equal([36, 4]);
      await procs[1].kill();
      await procs[2].kill(); // 12/40 = 30 %
      await waitFor(async () => (await status()) === 'unhealthy', 10_000, 'unhealthy at 30 % dead');
      const sweep = await reg.cleanup();
      expect(sweep.removed).to.equal(12);
      const after = await reg.healthCheck();
      expect(after.status).to.equal('healthy');
      expect(after.lastCleanup).to.equal(sweep.at);
      await reg.close();
    });
  });
});
