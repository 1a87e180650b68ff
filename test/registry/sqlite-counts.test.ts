/**
 * The per-process counts of the SQLite backend (src/backends/sqlite-counts.ts, issue 14 §7): exact
 * under every writer — raw SQL as the `sqlite3` shell writes it (INSERT OR REPLACE and OR IGNORE
 * included, with and without recursive triggers), the library, a restore's swap — and what
 * `count` reads, through the library and the CLI.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { dropProcCounts, trusted } from '../../src/backends/sqlite-counts.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { deadPid, killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const COLS = 'namespace, key, pid, node, meta, registered_at, updated_at, pid_start';

/** The counts table beside what it must say: a GROUP BY over every row. */
function counted(db: Database.Database): { table: unknown[]; truth: unknown[] } {
  return {
    table: db.prepare('SELECT ns, node, pid, start, n FROM proc_counts ORDER BY 1, 2, 3, 4').raw().all(),
    truth: db
      .prepare(
        `SELECT namespace, node, pid, ifnull(pid_start, -1), count(*) FROM registrations
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
      )
      .raw()
      .all(),
  };
}

/** A fresh store (schema, index, counts) made by the backend. */
async function store(file: string): Promise<void> {
  await (await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 })).close();
}

type Row = [ns: string, key: string, pid: number, node: string, start: number | null];
const row = fc.tuple(
  fc.constantFrom('a', 'b'),
  fc.constantFrom('k0', 'k1', 'k2', 'k3', 'k4', 'k5'),
  fc.constantFrom(101, 102, 103),
  fc.constantFrom('n1', 'n2'),
  fc.constantFrom(null, 1, 2),
) as fc.Arbitrary<Row>;
const meta = fc.constantFrom('{}', '{"tier":"gold"}', '{"tier":["x","x"]}');

/** Writes as another program would send them, each one statement (errors are part of the game). */
const op = fc.oneof(
  fc.record({ t: fc.constant('insert' as const), r: row, m: meta }),
  fc.record({ t: fc.constant('replace' as const), r: row, m: meta }),
  fc.record({ t: fc.constant('ignore' as const), r: row, m: meta }),
  fc.record({ t: fc.constant('upsert' as const), r: row, m: meta, take: fc.boolean() }),
  fc.record({ t: fc.constant('move' as const), r: row }),
  fc.record({ t: fc.constant('meta' as const), r: row, m: meta }),
  fc.record({ t: fc.constant('delete' as const), r: row }),
  fc.record({ t: fc.constant('deleteProc' as const), r: row }),
  fc.record({ t: fc.constant('replaceMany' as const), rows: fc.array(row, { maxLength: 6 }) }),
  fc.record({ t: fc.constant('clear' as const), r: row }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function apply(db: Database.Database, o: Op): void {
  const vals = (r: Row, m = '{}') => [r[0], r[1], r[2], r[3], m, 1, 1, r[4]];
  try {
    switch (o.t) {
      case 'insert':
      case 'replace':
      case 'ignore': {
        const verb = { insert: 'INSERT', replace: 'INSERT OR REPLACE', ignore: 'INSERT OR IGNORE' }[o.t];
        db.prepare(`${verb} INTO registrations (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(...vals(o.r, o.m));
        return;
      }
      case 'upsert':
        // register's shape: the conflict branch updates the holder only when allowed.
        db.prepare(
          `INSERT INTO registrations (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (namespace, key) DO UPDATE SET pid = excluded.pid, node = excluded.node, meta = excluded.meta,
             pid_start = excluded.pid_start WHERE ?`,
        ).run(...vals(o.r, o.m), o.take ? 1 : 0);
        return;
      case 'move':
        db.prepare('UPDATE registrations SET pid = ?, node = ?, pid_start = ? WHERE namespace = ? AND key = ?').run(
          o.r[2],
          o.r[3],
          o.r[4],
          o.r[0],
          o.r[1],
        );
        return;
      case 'meta':
        db.prepare('UPDATE registrations SET meta = ? WHERE namespace = ? AND key = ?').run(o.m, o.r[0], o.r[1]);
        return;
      case 'delete':
        db.prepare('DELETE FROM registrations WHERE namespace = ? AND key = ?').run(o.r[0], o.r[1]);
        return;
      case 'deleteProc':
        db.prepare('DELETE FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ?').run(
          o.r[3],
          o.r[2],
          o.r[4],
        );
        return;
      case 'replaceMany': {
        // The restore merge's shape: many rows replaced by one INSERT OR REPLACE … SELECT.
        db.exec('CREATE TEMP TABLE IF NOT EXISTS staged AS SELECT * FROM registrations WHERE 0; DELETE FROM staged');
        const ins = db.prepare(`INSERT INTO staged (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
        const seen = new Set<string>();
        for (const r of o.rows) if (!seen.has(r[0] + r[1]) && seen.add(r[0] + r[1])) ins.run(...vals(r));
        db.exec('INSERT OR REPLACE INTO registrations SELECT * FROM staged');
        return;
      }
      case 'clear':
        db.prepare('DELETE FROM registrations WHERE namespace = ?').run(o.r[0]);
        return;
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw e;
  }
}

describe('sqlite per-process counts: exact under every writer (issue 14 §7)', () => {
  const t = tempDir('procreg-counts-');
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
    t.cleanup();
  });

  for (const recursive of [false, true]) {
    it(`raw SQL histories (as from the sqlite3 shell; recursive_triggers ${recursive ? 'on' : 'off'}) keep proc_counts equal to a GROUP BY`, async () => {
      const file = join(t.dir, `prop-${recursive}.db`);
      await store(file);
      const db = new Database(file);
      db.pragma(`recursive_triggers = ${recursive ? 'ON' : 'OFF'}`);
      try {
        fc.assert(
          fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
            db.exec('DELETE FROM registrations');
            for (const o of ops) {
              apply(db, o);
              const c = counted(db);
              expect(c.table, JSON.stringify(o)).to.deep.equal(c.truth);
            }
          }),
          { numRuns: 150 },
        );
        expect(trusted(db)).to.equal(true);
      } finally {
        db.close();
      }
    });
  }

  it('the sqlite3 shell itself: INSERT OR REPLACE, UPDATE and DELETE keep `count` exact (library and CLI)', async function () {
    try {
      execFileSync('sqlite3', ['--version']);
    } catch {
      this.skip(); // no sqlite3 shell on this machine: the raw-SQL property above covers the same statements
    }
    const file = join(t.dir, 'shell.db');
    await store(file);
    const sql = [
      `INSERT INTO registrations (${COLS}) VALUES ('default', 'a', 1, 'far', '{}', 1, 1, NULL), ('default', 'b', 1, 'far', '{}', 1, 1, NULL), ('default', 'c', 2, 'far', '{}', 1, 1, 5);`,
      `INSERT OR REPLACE INTO registrations (${COLS}) VALUES ('default', 'a', 2, 'far', '{}', 1, 1, 5);`,
      `UPDATE registrations SET pid = 3 WHERE key = 'b';`,
      `INSERT OR REPLACE INTO registrations (${COLS}) VALUES ('other', 'z', 9, 'far', '{}', 1, 1, NULL);`,
      `DELETE FROM registrations WHERE key = 'c';`,
    ].join('\n');
    const script = join(t.dir, 'shell.sql');
    writeFileSync(script, sql);
    execFileSync('sqlite3', [file, `.read ${script}`]);
    const db = new Database(file, { readonly: true });
    const c = counted(db);
    db.close();
    expect(c.table).to.deep.equal(c.truth);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
    try {
      expect(await reg.count()).to.equal(2);
      expect(await reg.count({ namespace: 'other' })).to.equal(1);
    } finally {
      await reg.close();
    }
    const r = sb.run(['count', '--all-namespaces', '--json', '-b', `sqlite:${file}`]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<{ namespaces: Record<string, number> }>().namespaces).to.deep.equal({ default: 2, other: 1 });
  });

  it('count judges each process once from the counts: dead processes of this node drop out, other nodes count', async () => {
    const file = join(t.dir, 'live.db');
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, nodeName: 'me' });
    const a = await spawnSleeper();
    try {
      for (let i = 0; i < 5; i++) await reg.register(`live-${i}`, a.pid);
      const db = new Database(file);
      const gone = await deadPid();
      const ins = db.prepare(`INSERT INTO registrations (${COLS}) VALUES (?, ?, ?, ?, '{}', 1, 1, ?)`);
      db.transaction(() => {
        for (let i = 0; i < 300; i++) ins.run('default', `dead-${i}`, gone, 'me', null);
        for (let i = 0; i < 7; i++) ins.run('default', `far-${i}`, gone, 'far-node', null);
        for (let i = 0; i < 4; i++) ins.run('default', `reused-${i}`, a.pid, 'me', 12345); // a's pid, another start
      })();
      expect(db.prepare('SELECT count(*) FROM proc_counts').pluck().get(), 'one row per process').to.equal(4);
      db.close();
      expect(await reg.count(), 'live entries of this node plus the other node’s').to.equal(5 + 7);
      expect(await reg.backend.count('default'), 'stored entries, dead included').to.equal(316);
      await reg.cleanup();
      expect(await reg.backend.count('default')).to.equal(12);
      expect(await reg.count()).to.equal(12);
      const r = sb.run(['count', '-b', `sqlite:${file}`], { env: { ...sb.env, REGISTRY_NODE: 'me' } });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout.trim()).to.equal('12');
    } finally {
      await reg.close();
      await a.kill();
    }
  });

  it('a store without the counts gets them at its first writable open; a read-only open counts the old way', async () => {
    const file = join(t.dir, 'old.db');
    await store(file);
    const db = new Database(file);
    const ins = db.prepare(`INSERT INTO registrations (${COLS}) VALUES ('default', ?, 1, 'far', '{}', 1, 1, NULL)`);
    db.transaction(() => {
      for (let i = 0; i < 50; i++) ins.run(`k-${i}`);
    })();
    dropProcCounts(db);
    expect(trusted(db)).to.equal(false);
    // A read-only reader (the CLI's count) on a store from before the counts.
    const r = sb.run(['count', '-b', `sqlite:${file}`]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('50');
    expect(trusted(db), 'a read-only command writes nothing').to.equal(false);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
    try {
      expect(trusted(db)).to.equal(true);
      const c = counted(db);
      expect(c.table).to.deep.equal(c.truth);
      expect(await reg.count()).to.equal(50);
    } finally {
      await reg.close();
      db.close();
    }
  });

  it('restore (replace and merge) leaves the counts exact: the swap rebuilds them with the new table', async () => {
    const src = join(t.dir, 'src.db');
    const dst = join(t.dir, 'dst.db');
    const out = join(t.dir, 'dump.ndjson');
    const a = await spawnSleeper();
    try {
      const s = await ProcessRegistry.open({ backend: `sqlite:${src}`, cleanupInterval: 0 });
      for (let i = 0; i < 40; i++) await s.register(`k-${i}`, i % 2 ? a.pid : process.pid);
      const { dump, restore } = await import('../../src/registry/dump.js');
      await dump(s, { out });
      await s.close();
      const d = await ProcessRegistry.open({ backend: `sqlite:${dst}`, cleanupInterval: 0 });
      try {
        for (let i = 30; i < 60; i++) await d.register(`k-${i}`, a.pid);
        await restore(d, out, { mode: 'merge' });
        const db = new Database(dst, { readonly: true });
        let c = counted(db);
        expect(c.table, 'after a merge').to.deep.equal(c.truth);
        expect(await d.count()).to.equal(60);
        await restore(d, out, { mode: 'replace' });
        c = counted(db);
        expect(c.table, 'after a replace').to.deep.equal(c.truth);
        expect(trusted(db)).to.equal(true);
        db.close();
        expect(await d.count()).to.equal(40);
      } finally {
        await d.close();
      }
    } finally {
      await a.kill();
    }
  });
});
