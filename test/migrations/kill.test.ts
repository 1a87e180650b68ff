/**
 * SIGKILL during the hybrid backfill at five random points: the real CLI is spawned, killed
 * when the journal shows it past a random entry count, and rerun. The last run completes; the
 * stale locks are taken over; verify is green; no entry is lost or duplicated.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeLargeLegacy } from '../../scripts/legacy-fixtures.js';
import { loadBetterSqlite } from '../../src/backends/sqlite.js';
import { tempDir } from '../support/tmp.js';
import { BIN, cli, FIXTURE_NODE } from './support.js';

const N = 40_000;
const t = tempDir('procreg-kill-');

function copiedSoFar(journal: string): number {
  try {
    const j = JSON.parse(readFileSync(journal, 'utf8')) as {
      phases: Array<{ phase: string; status: string; cursor?: { copied: number } }>;
    };
    const h = j.phases.find((p) => p.phase === 'hybrid');
    return h?.status === 'done' ? Infinity : (h?.cursor?.copied ?? 0);
  } catch {
    return 0; // not written yet
  }
}

describe('SIGKILL during the hybrid backfill', function () {
  this.timeout(300_000);
  after(() => t.cleanup());

  it('five kills at random points, then a rerun completes with verify green and nothing lost or duplicated', async () => {
    writeLargeLegacy(join(t.dir, 'old.db'), N);
    const from = `legacy:${join(t.dir, 'old.db')}`;
    const to = `sqlite:${join(t.dir, 'new.db')}`;
    const journal = join(t.dir, 'registry.migration.json');
    expect((await cli(['migrate', 'wrap', '--from', from, '--yes'], { cwd: t.dir })).code).to.equal(0);
    const points = Array.from({ length: 5 }, () => 1000 + Math.floor(Math.random() * (N - 4000))).sort((a, b) => a - b);
    const killedAt: number[] = [];
    for (const point of points) {
      const child = spawn(process.execPath, [BIN, 'migrate', 'hybrid', '--to', to, '--yes', '--batch', '200'], {
        cwd: t.dir,
        env: { ...process.env, CI: '1', REGISTRY_NODE: FIXTURE_NODE },
        stdio: 'ignore',
      });
      const exited = once(child, 'exit');
      const deadline = Date.now() + 120_000;
      let done = false;
      child.once('exit', () => (done = true));
      while (!done && copiedSoFar(journal) < point) {
        if (Date.now() > deadline) throw new Error(`the backfill never reached ${point} entries`);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (!done) child.kill('SIGKILL');
      const [code, signal] = await exited;
      if (signal === 'SIGKILL') killedAt.push(copiedSoFar(journal));
      else expect(code, 'a run that finished before the kill point must have succeeded').to.equal(0);
    }
    expect(
      killedAt.length >= 3,
      `killed mid-backfill at least 3 times (killed at ${killedAt.join(', ')}; points ${points.join(', ')})`,
    ).to.be.ok;
    const last = await cli(['migrate', 'hybrid', '--to', to, '--yes', '--json'], { cwd: t.dir });
    expect(last.code, last.stderr).to.equal(0);
    const res = JSON.parse(last.stdout);
    expect(res.resumed || res.alreadyDone, 'the rerun resumed the interrupted phase').to.be.ok;
    const v = await cli(['verify', from, to, '--json'], { cwd: t.dir });
    expect(v.code, v.stdout + v.stderr).to.equal(0);
    expect(JSON.parse(v.stdout).equivalent).to.equal(true);
    const db = new (loadBetterSqlite())(join(t.dir, 'new.db'), { readonly: true });
    try {
      const { n, d: distinct } = db
        .prepare('SELECT count(*) AS n, count(DISTINCT namespace || char(0) || key) AS d FROM registrations')
        .get() as { n: number; d: number };
      expect(n, 'every legacy key copied exactly once').to.equal(N);
      expect(distinct).to.equal(N);
    } finally {
      db.close();
    }
    const st = JSON.parse((await cli(['migrate', 'status', '--json'], { cwd: t.dir })).stdout);
    expect(st.current).to.equal('hybrid');
    expect(st.lock, 'no lock left behind').to.equal(null);
  });
});
