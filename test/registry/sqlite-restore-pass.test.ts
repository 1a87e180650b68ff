/**
 * Restore into SQLite in one pass (issue 14 §7, src/backends/sqlite-restore.ts, src/registry/dump-read.ts):
 * the dump is staged while it is read and checked, so a bad line or a digest that does not match
 * at the end must still leave the old state; the metadata index is built while staging and must
 * be exactly what the live triggers build; the event loop runs while a restore reads and stages.
 */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Registration } from '../../src/backends/contract.js';
import { Digest } from '../../src/registry/digest.js';
import { restore } from '../../src/registry/dump.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { type DumpState, storeState, writeState } from '../support/restore.js';

/** Tables of `file` whose names start with `registrations_restore` or `meta_index_restore`. */
function stagingTables(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_restore' ESCAPE '\\'")
      .pluck()
      .all() as string[];
  } finally {
    db.close();
  }
}

/** Every row of a table, in a stable order. */
function rows(file: string, sql: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).raw().all();
  } finally {
    db.close();
  }
}

/** A dump of `entries` in file order (a key may come twice), with a header stating them. */
function writeDump(file: string, entries: Registration[]): void {
  const d = new Digest();
  for (const e of entries) d.add(e);
  const header = {
    procreg: 'dump',
    version: 1,
    count: d.count,
    digest: d.hex(),
    namespaces: [...new Set(entries.map((e) => e.namespace))].sort(),
    createdAt: Date.now(),
    source: 'test',
  };
  writeFileSync(file, [header, ...entries].map((x) => JSON.stringify(x)).join('\n') + '\n');
}

describe('sqlite restore in one pass: staged while checked, index built while staging (issue 14 §7)', function () {
  this.timeout(300_000);
  let sb: Sandbox;
  let a: DumpState;
  let b: DumpState;
  before(() => {
    sb = sandbox();
    a = writeState(join(sb.dir, 'a.ndjson'), 6000, 0, 'a');
    b = writeState(join(sb.dir, 'b.ndjson'), 6000, 3000, 'b');
  });
  after(() => sb.cleanup());

  it('library: a dump refused at its last line or by its digest, after thousands of entries were staged, leaves the old state, its index and its feed untouched and no staging table', async () => {
    const file = join(sb.dir, 'refused.db');
    const url = `sqlite:${file}`;
    const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      await restore(reg, a.file, { mode: 'replace' });
      await reg.register('after-a', process.pid, { type: 'worker' });
      const before = await storeState(url);
      const revision = await reg.backend.currentRevision!();
      const index = rows(file, 'SELECT * FROM meta_index ORDER BY ns, field, value, key');
      const lines = readFileSync(b.file, 'utf8').trimEnd().split('\n');
      // The last entry edited: every line is valid, only the digest tells.
      const edited = join(sb.dir, 'edited.ndjson');
      writeFileSync(edited, [...lines.slice(0, -1), lines.at(-1)!.replace('"gen":"b"', '"gen":"x"')].join('\n') + '\n');
      // The last line is not JSON.
      const broken = join(sb.dir, 'broken.ndjson');
      writeFileSync(broken, [...lines.slice(0, -1), '{"namespace":'].join('\n') + '\n');
      // One entry missing: the count tells.
      const short = join(sb.dir, 'short.ndjson');
      writeFileSync(short, lines.slice(0, -1).join('\n') + '\n');
      for (const [dump, why] of [
        [edited, /do not match the header's digest.*nothing was restored/],
        [broken, new RegExp(`line ${lines.length}: not valid JSON.*nothing was restored`)],
        [short, /holds 5999 entries but its header says 6000.*nothing was restored/],
      ] as const) {
        for (const mode of ['replace', 'merge'] as const) {
          const err = await restore(reg, dump, { mode }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, `${dump} (${mode})`).to.be.instanceOf(Error).with.property('code', 'INVALID_INPUT');
          expect((err as Error).message).to.match(why);
          expect(await storeState(url), `the old state after ${dump} (${mode})`).to.deep.equal(before);
          expect(stagingTables(file)).to.deep.equal([]);
          expect(await reg.backend.currentRevision!(), 'no reset row, no change on the feed').to.equal(revision);
          expect(rows(file, 'SELECT * FROM meta_index ORDER BY ns, field, value, key')).to.deep.equal(index);
        }
      }
      // The store still takes writes and restores.
      expect((await restore(reg, b.file, { mode: 'replace' })).restored).to.equal(b.count);
      expect(await storeState(url)).to.deep.equal({ count: b.count, digest: b.digest });
    } finally {
      await reg.close();
    }
  });

  it('library: the index built while staging is exactly the one the live triggers build (lists, repeats, numbers, booleans, null, long, nested and escaped values, a key twice in the dump)', async () => {
    const at = 1_700_000_000_000;
    const node = hostname();
    const metas: Array<Record<string, unknown>> = [
      { type: 'worker' },
      { priority: 3 },
      { priority: 2.5, region: 'eu' },
      { tier: ['gold', 'gold', 'silver'] },
      { capabilities: ['a', 1, true, null, { x: 1 }, ['n'], 'a'] },
      { region: 'x'.repeat(300) },
      { region: 'é'.repeat(100) }, // 200 UTF-8 bytes: indexed
      { region: 'é'.repeat(101) }, // 202: not indexed
      { category: { nested: 1 } },
      { type: null, agent_type: false },
      { priority: 1e21 },
      { priority: -7, tier: [] },
      { region: 'ü-é ✓' },
      { type: 'a"b\\c\n' },
      {},
      { other: 'type', note: '"region"' }, // names an indexed field only inside values
      { role: 'api', zone: 'z1' },
    ];
    const entries: Registration[] = [];
    for (let i = 0; i < 3000; i++)
      entries.push({
        namespace: i % 7 === 0 ? 'jobs' : 'default',
        key: `k-${String(i).padStart(5, '0')}`,
        pid: process.pid,
        node,
        meta: { ...metas[i % metas.length], i },
        registeredAt: at,
        updatedAt: at,
        pidStart: null,
      });
    // A key twice: the later line wins, in the table and in the index.
    entries.push({ ...entries[1]!, meta: { tier: ['bronze'], i: -1 } });
    entries.push({ ...entries[3]!, meta: { note: 'no indexed field now' } });
    const dump = join(sb.dir, 'varied.ndjson');
    writeDump(dump, entries);

    // Staged (replace into an empty store: the staged index is swapped in) ...
    const staged = join(sb.dir, 'staged.db');
    // ... and the reference: a merge into a non-empty store, where the live table's triggers index each row.
    const live = join(sb.dir, 'live.db');
    const regS = await ProcessRegistry.open({ backend: `sqlite:${staged}`, cleanupInterval: 0 });
    const regL = await ProcessRegistry.open({ backend: `sqlite:${live}`, cleanupInterval: 0 });
    try {
      await restore(regS, dump, { mode: 'replace' });
      await regL.register('seed', process.pid, { type: 'seed' }, { namespace: 'seed' });
      await restore(regL, dump, { mode: 'merge' });
      await regL.unregister('seed', { namespace: 'seed' });
      const all = 'SELECT * FROM registrations ORDER BY namespace, key';
      expect(rows(staged, all)).to.deep.equal(rows(live, all));
      const index = 'SELECT * FROM meta_index ORDER BY ns, field, value, key';
      const got = rows(staged, index);
      expect(got).to.deep.equal(rows(live, index));
      expect(got.length, 'the index is not empty').to.be.greaterThan(1000);
      // The later line of a repeated key won, in the index too.
      expect((await regS.lookup('k-00001'))!.meta).to.deep.equal({ tier: ['bronze'], i: -1 });
      expect((await regS.list({ where: [['tier', 'bronze']] })).items.map((e) => e.key)).to.deep.equal(['k-00001']);
      // Answered by the index, the same as a scan.
      for (const [field, value] of [
        ['tier', 'gold'],
        ['priority', '2.5'],
        ['capabilities', 'true'],
        ['capabilities', 'null'],
        ['region', 'é'.repeat(100)],
        ['type', 'a"b\\c\n'],
      ] as Array<[string, string]>) {
        const page = await regS.list({ where: [[field, value]], limit: 5000 });
        expect(page.plan?.method, `${field}=${value} answered by the index`).to.equal('index');
        const want = entries
          .filter((e, i) => e.namespace === 'default' && !entries.slice(i + 1).some((x) => x.key === e.key))
          .filter((e) => {
            const v = e.meta[field];
            const text = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x));
            return Array.isArray(v) ? v.some((x) => text(x) === value) : v !== undefined && text(v) === value;
          })
          .map((e) => e.key)
          .sort();
        expect(page.items.map((e) => e.key)).to.deep.equal(want);
      }
      // A write after the swap is indexed by the new table's triggers.
      await regS.register('after', process.pid, { tier: 'gold' });
      expect((await regS.list({ where: [['tier', 'gold']], limit: 5000 })).items.map((e) => e.key)).to.include('after');
    } finally {
      await regS.close();
      await regL.close();
    }
  });

  it('library: the event loop runs while a restore reads, checks and stages (a 5 ms timer keeps firing)', async () => {
    const file = join(sb.dir, 'loop.db');
    const big = writeState(join(sb.dir, 'big.ndjson'), 40_000, 0, 'big');
    const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
    try {
      let ticks = 0;
      let stop = false;
      let last = performance.now();
      let gap = 0;
      const tick = () => {
        ticks++;
        const now = performance.now();
        gap = Math.max(gap, now - last);
        last = now;
        if (!stop) setTimeout(tick, 5);
      };
      setTimeout(tick, 5);
      const t0 = performance.now();
      const r = await restore(reg, big.file, { mode: 'replace' });
      const ms = performance.now() - t0;
      stop = true;
      expect(r.restored).to.equal(big.count);
      // A synchronous check of the whole file first (as before) held the loop for a large share of
      // the restore; now the longest gap is one slice, a small share whatever the machine's load.
      expect(ticks, `${ticks} ticks in ${ms.toFixed(0)} ms`).to.be.at.least(10);
      expect(gap, `longest gap ${gap.toFixed(0)} ms of a ${ms.toFixed(0)} ms restore`).to.be.below(ms / 8);
    } finally {
      await reg.close();
    }
  });

  it('CLI: `registry restore` of a dump whose digest does not match, into a non-empty store: exit 2, nothing restored, the old state and no staging table', async () => {
    const file = join(sb.dir, 'cli.db');
    const bk = ['-b', `sqlite:${file}`];
    const first = sb.run(['restore', a.file, '--mode', 'replace', '--yes', ...bk]);
    expect(first.code, first.stderr).to.equal(0);
    const lines = readFileSync(b.file, 'utf8').trimEnd().split('\n');
    const edited = join(sb.dir, 'cli-edited.ndjson');
    writeFileSync(edited, [...lines.slice(0, -1), lines.at(-1)!.replace('"gen":"b"', '"gen":"y"')].join('\n') + '\n');
    const r = sb.run(['restore', edited, '--mode', 'replace', '--yes', ...bk]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/^registry: .*do not match the header's digest.*nothing was restored/m);
    expect(r.stderr).to.not.match(/\n\s+at /);
    expect(await storeState(`sqlite:${file}`)).to.deep.equal({ count: a.count, digest: a.digest });
    expect(stagingTables(file)).to.deep.equal([]);
  });
});
