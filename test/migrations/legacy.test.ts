/**
 * The legacy backend against the committed fixtures: effective views, lookups, anomaly counts,
 * write semantics, and refusal of corrupt or foreign files (library and CLI, exit 2).
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError, type Registration } from '../../src/backends/contract.js';
import { legacyAnomalies } from '../../src/backends/legacy.js';
import { loadBetterSqlite } from '../../src/backends/sqlite.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture, FIXTURE_NODE, view } from './support.js';

const t = tempDir('procreg-legacy-');

async function openLegacy(path: string): Promise<ProcessRegistry> {
  return ProcessRegistry.open({ backend: `legacy:${path}`, nodeName: FIXTURE_NODE, cleanupInterval: 0 });
}

async function listAll(reg: ProcessRegistry): Promise<Registration[]> {
  const out: Registration[] = [];
  for (const namespace of await reg.namespaces()) for await (const e of reg.entries({ namespace })) out.push(e);
  return out;
}

describe('legacy backend: fixtures', () => {
  after(() => t.cleanup());

  for (const name of ['clean', 'diverged', 'dead', 'stale']) {
    it(`${name}: effective view, lookups and anomalies are the documented ones`, async () => {
      const { path, expected } = fixture(name, t.dir);
      const reg = await openLegacy(path);
      try {
        expect(view(await listAll(reg)), 'listing = expected effective view').to.deep.equal(expected.view);
        // Paging with small pages yields the same view.
        const paged: Registration[] = [];
        for (const namespace of await reg.namespaces())
          for await (const e of reg.entries({ namespace, pageSize: 1 })) paged.push(e);
        expect(view(paged), 'page size 1 gives the same view').to.deep.equal(expected.view);
        const backend = reg.backend as unknown as { db: Parameters<typeof legacyAnomalies>[0] };
        const counts = legacyAnomalies(backend.db, (e) => reg.isAlive(e), path).counts();
        for (const [k, v] of Object.entries(expected.anomalies)) expect(counts[k], `anomaly count ${k}`).to.equal(v);
        for (const [nsKey, pid] of Object.entries(expected.lookups)) {
          const [namespace, key] = [nsKey.slice(0, nsKey.lastIndexOf('/')), nsKey.slice(nsKey.lastIndexOf('/') + 1)];
          expect((await reg.lookup(key, { namespace }))?.pid ?? null, `lookup ${nsKey}`).to.equal(pid);
        }
        const h = await reg.healthCheck();
        expect(h.alive).to.equal(expected.anomalies.effective);
        expect(h.staleIndexRows).to.equal(expected.anomalies.staleIndexRows);
        expect(h.staleCacheRows).to.equal(expected.anomalies.staleCacheRows);
      } finally {
        await reg.close();
      }
    });
  }

  it('a live registry hit wins with metadata {}; a dead backup hit is deleted by lookup; a dead registry hit is not-found without fallback', async () => {
    const { path } = fixture('dead', t.dir);
    const reg = await openLegacy(path);
    const db = new (loadBetterSqlite())(path, { readonly: true });
    try {
      const count = (table: string, key: string) =>
        (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE service = ?`).get(key) as { n: number }).n;
      expect((await reg.lookup('live-reg-dead-bak'))?.meta, 'registry hit carries no metadata').to.deep.equal({});
      expect(count('process_registry_backup', 'dead-bak-only')).to.equal(1);
      expect(await reg.lookup('dead-bak-only')).to.equal(undefined);
      expect(count('process_registry_backup', 'dead-bak-only'), 'dead backup hit deleted').to.equal(0);
      expect(await reg.lookup('dead-reg-live-bak'), 'dead registry hit: no fallback to the live backup row').to.equal(
        undefined,
      );
      expect(count('process_registry_backup', 'dead-reg-live-bak'), 'the backup row is left alone').to.equal(1);
    } finally {
      db.close();
      await reg.close();
    }
  });

  it('register checks and writes the backup table; unregister removes the key from both tables', async () => {
    const { path } = fixture('diverged', t.dir);
    const reg = await openLegacy(path);
    const db = new (loadBetterSqlite())(path, { readonly: true });
    try {
      const rows = (table: string, key: string) =>
        db.prepare(`SELECT pid, node FROM ${table} WHERE namespace = 'default' AND service = ?`).all(key);
      // The backup table holds 200 for "mismatch": 200 on node-a is a live other-node holder.
      const refused: unknown = await reg.register('mismatch', 999, {}, { node: 'node-a' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(
        (refused as { holder?: Registration } | undefined)?.holder?.pid,
        'refused, naming the backup holder',
      ).to.equal(200);
      // only-reg has no backup row: the legacy check passes and the backup table gains a row.
      await reg.register('only-reg', 301, { via: 'register' }, { node: 'node-b' });
      expect(rows('process_registry_backup', 'only-reg')).to.deep.equal([{ pid: 301, node: 'node-b' }]);
      expect(rows('registry', 'only-reg'), 'registry table untouched').to.deep.equal([{ pid: 300, node: 'node-b' }]);
      expect((await reg.lookup('only-reg'))?.pid, 'legacy lookup still answers from the registry table').to.equal(300);
      expect(await reg.unregister('only-reg')).to.equal(true);
      expect(rows('registry', 'only-reg')).to.deep.equal([]);
      expect(rows('process_registry_backup', 'only-reg')).to.deep.equal([]);
    } finally {
      db.close();
      await reg.close();
    }
  });

  it('refuses corrupt and foreign files with InvalidInputError (exit 2)', async () => {
    const corrupt = join(t.dir, 'corrupt.db');
    writeFileSync(corrupt, Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4096, 0xab)]));
    const text = join(t.dir, 'text.db');
    writeFileSync(text, 'this is not a database at all, just text\n'.repeat(200));
    const foreign = join(t.dir, 'foreign.db');
    const db = new (loadBetterSqlite())(foreign);
    db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)');
    db.close();
    const procreg = join(t.dir, 'procreg.db');
    await (await ProcessRegistry.open({ backend: `sqlite:${procreg}`, cleanupInterval: 0 })).close();
    for (const f of [corrupt, text, foreign, procreg]) {
      const err = await openLegacy(f).catch((e) => e);
      expect(err instanceof InvalidInputError, `${f}: expected InvalidInputError, got ${err}`).to.be.ok;
      expect(err.exitCode).to.equal(2);
    }
    for (const f of [corrupt, foreign]) {
      const r = await cli(['list', '-b', `legacy:${f}`], { cwd: t.dir });
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr).to.match(/^registry: .*(not a usable SQLite database|not a legacy dual-storage registry)/);
      expect(r.stderr.trim().split('\n').length, 'one line, no stack trace').to.equal(1);
      const w = await cli(['migrate', 'wrap', '--from', `legacy:${f}`, '--yes'], { cwd: t.dir });
      expect(w.code, w.stderr).to.equal(2);
      expect(w.stderr, 'no stack trace').to.not.match(/\n\s+at /);
    }
  });
});
