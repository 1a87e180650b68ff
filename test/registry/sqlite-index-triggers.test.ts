/**
 * The metadata index's triggers fire only for rows whose metadata names an indexed field (a WHEN
 * on literals, src/backends/sqlite-index.ts): a batched insert no longer pays the trigger body for
 * every row. Triggers made by an older procreg (the generic WHEN) or for other fields are made
 * again at the next writable open, and the index stays exact.
 */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';

const INDEX = 'SELECT ns, field, value, key FROM meta_index ORDER BY ns, field, value, key';

function insertTrigger(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT sql FROM sqlite_master WHERE name = 'meta_index_insert'").pluck().get() as string;
  } finally {
    db.close();
  }
}

/** The index a rebuild from the table gives, read beside the stored one. */
function indexes(file: string): { stored: unknown[]; rebuilt: unknown[] } {
  const db = new Database(file);
  try {
    const stored = db.prepare(INDEX).raw().all();
    db.exec('CREATE TEMP TABLE saved AS SELECT * FROM meta_index; DELETE FROM meta_index');
    // Every row written again: the live triggers index each one from scratch.
    db.exec(
      'CREATE TEMP TABLE rows AS SELECT * FROM registrations; DELETE FROM registrations; INSERT INTO registrations SELECT * FROM temp.rows',
    );
    const rebuilt = db.prepare(INDEX).raw().all();
    return { stored, rebuilt };
  } finally {
    db.close();
  }
}

describe('sqlite metadata index triggers: only rows naming an indexed field (issue 14 §7)', function () {
  this.timeout(120_000);

  it('the triggers name the indexed fields; writes of every kind keep the index exact, and rows without an indexed field add nothing', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'idx.db');
      const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
      try {
        await reg.bulkRegister(
          Array.from({ length: 200 }, (_, i) => ({
            key: `k${i}`,
            pid: process.pid,
            meta: i % 4 === 0 ? { tier: ['gold', 'gold'], i } : i % 4 === 1 ? { zone: 'z', note: '"tier"' } : { i },
          })),
        );
        await reg.updateMetadata('k1', { tier: 'silver' }); // a row gains an indexed field
        await reg.updateMetadata('k0', { tier: null }, { merge: true }); // and one loses it
        await reg.unregister('k4');
        await reg.register('k5', process.pid, { region: 'eu' }); // replaced, same pid
      } finally {
        await reg.close();
      }
      expect(insertTrigger(file)).to.include(`instr(NEW.meta, '"tier"') > 0`).and.not.include("NEW.meta <> '{}'");
      const { stored, rebuilt } = indexes(file);
      expect(stored).to.deep.equal(rebuilt);
      expect(stored).to.deep.include(['default', 'tier', 'silver', 'k1']);
      expect(stored).to.deep.include(['default', 'region', 'eu', 'k5']);
      expect(stored).to.not.deep.include(['default', 'tier', 'gold', 'k0']);
      expect(stored).to.not.deep.include(['default', 'tier', 'gold', 'k4']);
    } finally {
      t.cleanup();
    }
  });

  it('triggers of an older procreg (generic WHEN) are made again at the next writable open without a rebuild; triggers for other fields are made again and the index rebuilt', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'old.db');
      const url = `sqlite:${file}`;
      let reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      for (let i = 0; i < 20; i++) await reg.register(`k${i}`, process.pid, { tier: i % 2 ? 'gold' : 'silver' });
      await reg.close();
      // The insert trigger as an older procreg made it.
      let raw = new Database(file);
      const current = insertTrigger(file);
      const old = current.replace(/WHEN \(.*?\) BEGIN/s, "WHEN NEW.meta <> '{}' BEGIN");
      expect(old).to.not.equal(current);
      raw.exec(`DROP TRIGGER meta_index_insert; ${old}`);
      raw.close();
      reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      await reg.register('after-upgrade', process.pid, { tier: 'gold' });
      await reg.close();
      expect(insertTrigger(file)).to.equal(current);
      let ix = indexes(file);
      expect(ix.stored).to.deep.equal(ix.rebuilt);
      expect(ix.stored).to.deep.include(['default', 'tier', 'gold', 'after-upgrade']);

      // Triggers made for another field list (a process that changed the fields with an older
      // procreg): writes in between were not indexed; the next open makes them again and rebuilds.
      raw = new Database(file);
      raw.exec(`DROP TRIGGER meta_index_insert; ${current.replaceAll('"tier"', '"nothing"')}`);
      raw
        .prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run('default', 'missed', process.pid, 'elsewhere', '{"tier":"gold"}', 1, 1, null);
      expect(raw.prepare("SELECT count(*) FROM meta_index WHERE key = 'missed'").pluck().get()).to.equal(0);
      raw.close();
      reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      await reg.close();
      expect(insertTrigger(file)).to.equal(current);
      ix = indexes(file);
      expect(ix.stored).to.deep.equal(ix.rebuilt);
      expect(ix.stored).to.deep.include(['default', 'tier', 'gold', 'missed']);
    } finally {
      t.cleanup();
    }
  });
});
