/**
 * Restore into SQLite through a staging table and one swap (issue 14 §7, src/backends/sqlite-restore.ts):
 * all or nothing, the WAL bounded by a chunk rather than the dump, and a `registry restore` child
 * SIGKILLed at random points leaves exactly the old state or the new one.
 */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { restore } from '../../src/registry/dump.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { waitFor } from '../support/processes.js';
import { type DumpState, sigkill, storeState, writeState } from '../support/restore.js';

const N = 30_000;

function tables(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
  } finally {
    db.close();
  }
}

/** Rows in the staging table now (0 when there is none). */
function stagedRows(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM registrations_restore').pluck().get() as number;
  } catch {
    return 0;
  } finally {
    db.close();
  }
}

describe('sqlite restore: staged, one swap, bounded WAL (issue 14 §7)', function () {
  this.timeout(300_000);
  let sb: Sandbox;
  let a: DumpState;
  let b: DumpState;
  before(() => {
    sb = sandbox();
    a = writeState(join(sb.dir, 'a.ndjson'), N, 0, 'a');
    b = writeState(join(sb.dir, 'b.ndjson'), N, N / 2, 'b');
  });
  after(() => sb.cleanup());

  it('the swap keeps the metadata index and the change log: an indexed --where answers the restored state; a watch from before the swap is told to list again, one from after sees new writes', async () => {
    const file = join(sb.dir, 'swap.db');
    const url = `sqlite:${file}`;
    const s1 = writeState(join(sb.dir, 's1.ndjson'), 300, 0, 's1');
    const s2 = writeState(join(sb.dir, 's2.ndjson'), 300, 150, 's2');
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    const other = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 }); // another connection
    try {
      await restore(reg, s1.file, { mode: 'replace' });
      const errors: Error[] = [];
      const stop = await other.backend.watch!(
        { sinceRevision: await other.backend.currentRevision!() },
        () => {},
        (err) => errors.push(err),
      );
      await restore(reg, s2.file, { mode: 'replace' });
      await waitFor(() => errors.length > 0, 10_000, 'the watcher from before the swap to be told');
      expect(errors[0]).to.have.property('code', 'COMPACTED');
      stop();
      // The index was rebuilt inside the swap: it answers for the new rows only.
      const want: string[] = [];
      for (let i = 150; i < 450; i++) if (i % 5 !== 0 && i % 3 === 0) want.push(`svc-${String(i).padStart(6, '0')}`);
      const page = await reg.list({ where: [['type', 'worker']], limit: 1000 });
      expect(page.plan?.method, 'answered by the index').to.equal('index');
      expect(page.items.map((e) => e.key)).to.deep.equal(want);
      // The log's triggers are on the new table: a watch from now sees the next write.
      const seen: string[] = [];
      const stop2 = await other.backend.watch!({ sinceRevision: await other.backend.currentRevision!() }, (e) => {
        seen.push(e.key);
      });
      await reg.register('after-swap', process.pid, { type: 'worker' });
      await waitFor(() => seen.includes('after-swap'), 10_000, 'the write after the swap on the feed');
      stop2();
      expect((await reg.list({ where: [['type', 'worker']], limit: 1000 })).items.map((e) => e.key)).to.include(
        'after-swap',
      );
    } finally {
      await reg.close();
      await other.close();
    }
  });

  it('library: replace and merge end in the exact state; the WAL stays a fraction of the data; no staging table is left', async () => {
    const file = join(sb.dir, 'lib.db');
    const url = `sqlite:${file}`;
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      const r1 = await restore(reg, a.file, { mode: 'replace' });
      expect(r1).to.include({ restored: N, cleared: 0 });
      expect(await storeState(url)).to.deep.equal({ count: a.count, digest: a.digest });
      const r2 = await restore(reg, b.file, { mode: 'replace' });
      expect(r2).to.include({ restored: N, cleared: N });
      expect(await storeState(url)).to.deep.equal({ count: b.count, digest: b.digest });
      // The WAL is bounded by a chunk and the autocheckpoint (about 4 MiB), not by the dump: at
      // 100k entries a one-transaction restore leaves a WAL larger than the database.
      const big = writeState(join(sb.dir, 'big.ndjson'), 100_000, 0, 'big');
      await restore(reg, big.file, { mode: 'replace' });
      const wal = statSync(`${file}-wal`).size;
      const main = statSync(file).size;
      expect(wal, `WAL ${wal} B beside a ${main} B database`).to.be.below(main / 3);
      await restore(reg, b.file, { mode: 'replace' });
      // Merge over a non-empty store: the union, the dump winning on common keys.
      await restore(reg, a.file, { mode: 'merge' });
      expect(await reg.backend.count(undefined)).to.equal(N + N / 2);
      const k = (await reg.backend.lookup('default', 'svc-020001'))!;
      expect(k.meta).to.include({ gen: 'a' });
      const only = (await reg.backend.lookup('default', `svc-0${N + N / 2 - 1}`))!;
      expect(only.meta, 'b-only keys kept by a merge').to.include({ gen: 'b' });
      expect(tables(file)).to.not.include('registrations_restore');
      // The process index exists under one of its two names, and sweeps use it.
      expect((await reg.cleanup()).removed).to.equal(0);
    } finally {
      await reg.close();
    }
  });

  it('CLI: a `registry restore` child SIGKILLed at random points leaves exactly the old or the new state; the next restore discards the stage', async () => {
    const file = join(sb.dir, 'kill.db');
    const bk = ['-b', `sqlite:${file}`];
    const first = sb.run(['restore', a.file, '--mode', 'replace', '--yes', ...bk]);
    expect(first.code, first.stderr).to.equal(0);
    // How long a whole restore takes here: the kill points are spread over it.
    const t0 = performance.now();
    const timed = sb.run(['restore', a.file, '--mode', 'replace', '--yes', ...bk]);
    expect(timed.code, timed.stderr).to.equal(0);
    const fullMs = performance.now() - t0;
    let current = a;
    const outcomes: string[] = [];
    let staged = 0;
    // Kill points: shares of a whole restore's time, and 'staged': the whole dump is in the
    // staging table (the swap is next or running).
    for (const share of [0.2, 0.5, 'staged', 0.9, 0.3 + Math.random() * 0.7, 'staged', Math.random()] as const) {
      const target = current === a ? b : a;
      const run = sb.start(['restore', target.file, '--mode', 'replace', '--yes', ...bk]);
      const until = performance.now() + (share === 'staged' ? 0 : share) * fullMs;
      await waitFor(
        () =>
          run.child.exitCode !== null ||
          (share === 'staged' ? stagedRows(file) >= target.count : performance.now() >= until),
        120_000,
        'the kill point',
      );
      await sigkill(run.child);
      await run.done;
      if (tables(file).includes('registrations_restore')) staged++;
      const state = await storeState(`sqlite:${file}`);
      if (state.digest === target.digest) {
        expect(state.count).to.equal(target.count);
        outcomes.push(`${String(share).slice(0, 4)}: new`);
        current = target;
      } else {
        expect(state, `exactly the old state after a kill at ${share}`).to.deep.equal({
          count: current.count,
          digest: current.digest,
        });
        outcomes.push(`${String(share).slice(0, 4)}: old`);
      }
    }
    console.log(`      kill outcomes: ${outcomes.join(', ')} (${staged} left a stage)`);
    // `restore --resume` settles a stage left behind; the next restore would discard it too.
    const res = sb.run(['restore', '--resume', '--json', ...bk]);
    expect(res.code, res.stderr).to.equal(0);
    expect(tables(file)).to.not.include('registrations_restore');
    const target = current === a ? b : a;
    const last = sb.run(['restore', target.file, '--mode', 'replace', '--yes', ...bk]);
    expect(last.code, last.stderr).to.equal(0);
    expect(await storeState(`sqlite:${file}`)).to.deep.equal({ count: target.count, digest: target.digest });
  });
});
