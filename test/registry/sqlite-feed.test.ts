/**
 * The SQLite change log across OS processes (src/backends/sqlite-feed.ts, docs/feed.md): a write by
 * another process reaches this process's watch; `sinceRevision` resumes after a revision another
 * process wrote; a revision older than the log keeps is refused as compacted, and a watcher that
 * fell behind compaction is told (the lookup cache then resyncs); an older store gets the log at its
 * first writable open, never at a read.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { ChangeEvent } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { LookupCache } from '../../src/registry/lookup-cache.js';
import { present } from '../support/expect.js';
import { waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const SERVICE = fileURLToPath(new URL('../../src/registry/service.js', import.meta.url));

/**
 * A writer script for another node process: registers `n` keys `PREFIX0..` under its own pid, then
 * unregisters the first, with backendOpts from the JSON `opts`.
 */
const writer = (url: string, prefix: string, n: number, opts: object = {}) => `
  const { ProcessRegistry } = await import(${JSON.stringify(SERVICE)});
  const reg = await ProcessRegistry.open({ backend: ${JSON.stringify(url)}, cleanupInterval: 0, backendOpts: ${JSON.stringify(opts)} });
  for (let i = 0; i < ${n}; i++) await reg.register(${JSON.stringify(prefix)} + i, process.pid, { i });
  await reg.unregister(${JSON.stringify(prefix)} + 0);
  await reg.close();`;

/** Run `script` in another node process, asynchronously; resolves with its exit code. */
function runElsewhere(script: string): Promise<number | null> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return new Promise((resolve) => child.on('close', resolve));
}

/** The same, blocking this process (its event loop stops: its watch cannot poll meanwhile). */
function runElsewhereBlocking(script: string): void {
  execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit'] });
}

describe('sqlite change feed across processes', function () {
  this.timeout(120_000);
  const t = tempDir('procreg-feed-');
  after(() => t.cleanup());

  it("another process's writes reach this process's watch, in order, with their values", async () => {
    const url = `sqlite:${join(t.dir, 'cross.db')}`;
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      const b = reg.backend;
      present(b.watch, 'sqlite has a change feed');
      expect(b.capabilities.watch).to.equal(true);
      const events: ChangeEvent[] = [];
      const errors: Error[] = [];
      const stop = await b.watch(
        { namespace: 'default' },
        (e) => events.push(e),
        (e) => errors.push(e),
      );
      expect(await runElsewhere(writer(url, 'x', 5))).to.equal(0);
      await waitFor(() => events.length >= 6, 20_000, `six events from the other process (${events.length})`);
      stop();
      expect(errors).to.deep.equal([]);
      expect(events.map((e) => [e.type, e.key, e.entry?.meta ?? null])).to.deep.equal([
        ['put', 'x0', { i: 0 }],
        ['put', 'x1', { i: 1 }],
        ['put', 'x2', { i: 2 }],
        ['put', 'x3', { i: 3 }],
        ['put', 'x4', { i: 4 }],
        ['delete', 'x0', null],
      ]);
      const revs = events.map((e) => e.revision);
      expect(revs).to.deep.equal(
        revs.map((_, i) => revs[0]! + i),
        'consecutive revisions',
      );
      expect(events[0]!.entry!.pid, 'the pid of the writer, not ours').to.not.equal(process.pid);
      present(b.currentRevision, 'currentRevision');
      expect(await b.currentRevision()).to.equal(revs.at(-1));
    } finally {
      await reg.close();
    }
  });

  it('sinceRevision resumes after a revision another process wrote; ahead of the log is refused', async () => {
    const url = `sqlite:${join(t.dir, 'since.db')}`;
    expect(await runElsewhere(writer(url, 's', 4))).to.equal(0); // revisions 1..5
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      const b = reg.backend;
      present(b.watch, 'sqlite has a change feed');
      const got: ChangeEvent[] = [];
      const stop = await b.watch({ sinceRevision: 2 }, (e) => got.push(e));
      stop();
      expect(got.map((e) => [e.revision, e.type, e.key])).to.deep.equal([
        [3, 'put', 's2'],
        [4, 'put', 's3'],
        [5, 'delete', 's0'],
      ]);
      expect(() => b.watch!({ sinceRevision: 99 }, () => undefined)).to.throw(/ahead of the feed's current revision 5/);
    } finally {
      await reg.close();
    }
  });

  it('a revision older than the log keeps is refused as compacted; a watcher left behind is told, the cache resyncs', async () => {
    const url = `sqlite:${join(t.dir, 'compact.db')}`;
    // The retention is stored in the file: the other processes keep it.
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, backendOpts: { feedRetention: 10 } });
    try {
      const b = reg.backend;
      present(b.watch, 'sqlite has a change feed');
      present(b.currentRevision, 'currentRevision');
      expect(await runElsewhere(writer(url, 'c', 300))).to.equal(0); // 301 revisions
      const head = await b.currentRevision();
      expect(head).to.equal(301);
      const db = new Database(join(t.dir, 'compact.db'), { readonly: true });
      const kept = db.prepare('SELECT count(*) FROM registry_changes').pluck().get() as number;
      db.close();
      expect(kept, 'the log is bounded by the retention (compacted every 128 revisions)').to.be.within(10, 10 + 128);
      const errs: Error[] = [];
      await b.watch(
        { sinceRevision: 1 },
        () => expect.fail('nothing is replayed from a compacted revision'),
        (e) => errs.push(e),
      );
      expect(errs.length).to.equal(1);
      expect(errs[0]!.message).to.match(
        /^revision 1 is compacted \(oldest kept: \d+\): list again and watch from the current revision$/,
      );
      // A recent revision still resumes.
      const recent: number[] = [];
      (await b.watch({ sinceRevision: head - 3 }, (e) => recent.push(e.revision)))();
      expect(recent).to.deep.equal([head - 2, head - 1, head]);

      // A live watcher that cannot poll while the log moves past it (this process blocked) is told.
      const cache = await LookupCache.open(reg);
      const live: ChangeEvent[] = [];
      const lost: Error[] = [];
      const stop = await b.watch(
        {},
        (e) => live.push(e),
        (e) => lost.push(e),
      );
      runElsewhereBlocking(writer(url, 'd', 300));
      await waitFor(() => lost.length > 0, 20_000, 'the watcher to be told it fell behind the compaction');
      stop();
      expect(lost[0]!.message).to.match(/compacted/);
      expect(live, 'nothing delivered out of a gap').to.deep.equal([]);
      await waitFor(() => cache.stats().resyncs >= 1, 20_000, 'the lookup cache to resync');
      await cache.close();
    } finally {
      await reg.close();
    }
  });

  it('an older store without the log: a read writes nothing, the first writable open adds it, a waiting watch sees it', async () => {
    const file = join(t.dir, 'old.db');
    const url = `sqlite:${file}`;
    expect(await runElsewhere(writer(url, 'o', 2))).to.equal(0);
    // Make it a store from before the log.
    const db = new Database(file);
    db.exec(`DROP TRIGGER registry_changes_insert; DROP TRIGGER registry_changes_update; DROP TRIGGER registry_changes_delete;
      DROP TRIGGER registry_changes_compact; DROP TABLE registry_changes; DELETE FROM registry_info WHERE name = 'feed_retention';`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const tables = () => db.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'registry_changes%'").pluck().all();
    try {
      // A reader (create: false, as a read-only command opens it) writes nothing.
      const reader = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, create: false });
      const b = reader.backend;
      present(b.watch, 'sqlite has a change feed');
      present(b.currentRevision, 'currentRevision');
      expect(await b.currentRevision()).to.equal(0);
      const events: ChangeEvent[] = [];
      const stop = await b.watch({}, (e) => events.push(e));
      expect(tables(), 'no log made by a reader').to.deep.equal([]);
      expect(await runElsewhere(writer(url, 'n', 1))).to.equal(0);
      expect(tables().length, 'the log and its four triggers').to.equal(5);
      await waitFor(() => events.length >= 2, 20_000, 'the new writes');
      stop();
      await reader.close();
      expect(events.map((e) => [e.revision, e.type, e.key])).to.deep.equal([
        [1, 'put', 'n0'],
        [2, 'delete', 'n0'],
      ]);
    } finally {
      db.close();
    }
  });
});
