/**
 * Metadata indexes on memory and SQLite (docs/indexes.md): `list --where` through the index,
 * `--explain` and the JSON `explain`, `indexFields` from a profile, an existing store indexed at
 * its first writable open (never by a read-only one), and `count` judged once per process.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dropProcCounts } from '../../src/backends/sqlite-counts.js';
import { loadBetterSqlite } from '../../src/backends/sqlite.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';
import { killAllSleepers, spawnSleepers } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

type Listed = { items: Array<{ key: string }>; explain: unknown };

describe('metadata indexes: list --where, --explain, count', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('sqlite: --where on an indexed field reads the index, on another field scans; both exact (CLI)', async () => {
    const db = join(sb.dir, 'idx.db');
    writeFileSync(
      join(sb.dir, 'work', 'registry.config.json'),
      JSON.stringify({
        default: 'idx',
        profiles: { idx: { backend: `sqlite:${db}`, backendOpts: { indexFields: ['zone'] } } },
      }),
    );
    const [p] = await spawnSleepers(1);
    for (const [k, zone, role] of [
      ['a', 'z1', 'web'],
      ['b', 'z2', 'web'],
      ['c', 'z1', 'db'],
    ] as const) {
      const r = sb.run(['register', k, '--pid', String(p.pid), '--meta', `zone=${zone}`, '--meta', `role=${role}`]);
      expect(r.code, r.stderr).to.equal(0);
    }
    const byZone = sb.run(['list', '--where', 'zone=z1', '--json']);
    expect(byZone.code, byZone.stderr).to.equal(0);
    expect(byZone.json<Listed>().items.map((e) => e.key)).to.deep.equal(['a', 'c']);
    expect(byZone.json<Listed>().explain).to.deep.equal({ method: 'index', field: 'zone', scanned: 2 });

    const explained = sb.run(['list', '--where', 'zone=z1', '--explain']);
    expect(explained.code, explained.stderr).to.equal(0);
    expect(explained.stderr).to.match(/explain: index on "zone" \(2 index entries read\)/);

    const byRole = sb.run(['list', '--where', 'role=web', '--json']);
    expect(byRole.json<Listed>().items.map((e) => e.key)).to.deep.equal(['a', 'b']);
    expect(byRole.json<Listed>().explain).to.deep.equal({ method: 'scan', scanned: 3 });
    expect(sb.run(['list', '--where', 'role=web', '--explain']).stderr).to.match(/explain: scan \(3 entries read/);

    // Both terms: the index answers zone, the role term is checked on each of its entries.
    const both = sb.run(['list', '--where', 'role=web', '--where', 'zone=z1', '--json']);
    expect(both.json<Listed>().items.map((e) => e.key)).to.deep.equal(['a']);
    expect(both.json<Listed>().explain).to.deep.equal({ method: 'index', field: 'zone', scanned: 2 });

    // The index follows writes: a metadata change moves the entry, an unregister drops it.
    expect(sb.run(['meta', 'set', 'c', '--meta', 'zone=z2', '--merge']).code).to.equal(0);
    expect(sb.run(['unregister', 'a']).code).to.equal(0);
    expect(
      sb
        .run(['list', '--where', 'zone=z2', '--json'])
        .json<Listed>()
        .items.map((e) => e.key),
    ).to.deep.equal(['b', 'c']);
    expect(sb.run(['list', '--where', 'zone=z1', '--json']).json<Listed>().items).to.deep.equal([]);
    // No --where: no explain in the JSON (the output is what it was).
    expect(sb.run(['list', '--json']).json<Record<string, unknown>>()).to.not.have.property('explain');
  });

  it('sqlite: the default fields (the seed list) index every element of a list value (CLI)', async () => {
    const [p] = await spawnSleepers(1);
    const db = `sqlite:${join(sb.dir, 'default-fields.db')}`;
    const reg = await ProcessRegistry.open({ backend: db, cleanupInterval: 0 });
    await reg.register('w1', p.pid, { capabilities: ['gpu', 'ssd'], tier: 'gold' });
    await reg.register('w2', p.pid, { capabilities: ['ssd'], tier: 'silver' });
    await reg.close();
    const r = sb.run(['list', '-b', db, '--where', 'capabilities=ssd', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<Listed>().items.map((e) => e.key)).to.deep.equal(['w1', 'w2']);
    expect(r.json<Listed>().explain).to.deep.equal({ method: 'index', field: 'capabilities', scanned: 2 });
    const gpu = sb.run(['list', '-b', db, '--where', 'capabilities=gpu', '--json']).json<Listed>();
    expect(gpu.items.map((e) => e.key)).to.deep.equal(['w1']);
  });

  it('memory: --where through the index and --explain in the REPL (one process)', async () => {
    const [p] = await spawnSleepers(1);
    const script = [
      `register a --pid ${p.pid} --meta tier=gold --meta role=web`,
      `register b --pid ${p.pid} --meta tier=silver --meta role=web`,
      `register c --pid ${p.pid} --meta tier=gold --meta role=db`,
      'list --where tier=gold --explain',
      'list --where role=web --explain',
      'list --where tier=gold --json',
      'list --where role=web --json',
      '',
    ].join('\n');
    const child = spawn(process.execPath, [BIN, 'repl', '-b', 'memory:'], {
      env: sb.env,
      cwd: sb.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(script);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    expect(code, err).to.equal(0);
    // The two JSON documents, after the register lines and the two tables.
    const docs = (out.match(/^\{[\s\S]*?^\}/gm) ?? []).map((t) => JSON.parse(t) as Listed);
    expect(docs).to.have.length(2);
    expect(docs[0]!.items.map((e) => e.key)).to.deep.equal(['a', 'c']);
    expect(docs[0]!.explain).to.deep.equal({ method: 'index', field: 'tier', scanned: 2 });
    expect(docs[1]!.items.map((e) => e.key)).to.deep.equal(['a', 'b']);
    expect(docs[1]!.explain).to.deep.equal({ method: 'scan', scanned: 3 });
    expect(err).to.match(/explain: index on "tier"/);
    expect(err).to.match(/explain: scan/);
  });

  it('an existing store without the index gets it at its first writable open; a read-only open writes nothing', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'old.db');
      const [p] = await spawnSleepers(1);
      // A store as the code before the index wrote it: the same schema without meta_index.
      const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
      for (let i = 0; i < 50; i++) await reg.register(`k${i}`, p.pid, { tier: i % 5 === 0 ? 'gold' : 'silver' });
      await reg.close();
      const Database = loadBetterSqlite();
      const raw = new Database(file);
      raw.exec(`DROP TRIGGER meta_index_insert; DROP TRIGGER meta_index_delete; DROP TRIGGER meta_index_update;
        DROP TABLE meta_index; DROP TABLE meta_index_fields;`);
      dropProcCounts(raw); // nor the per-process counts (src/backends/sqlite-counts.ts)
      const schema = () => raw.prepare('SELECT type, name FROM sqlite_master ORDER BY name').all();
      // (the change log of src/backends/sqlite-feed.ts stays: it is not the index)
      expect(schema().map((r) => (r as { name: string }).name)).to.deep.equal([
        'registrations',
        'registrations_by_process',
        'registry_changes',
        'registry_changes_compact',
        'registry_changes_delete',
        'registry_changes_insert',
        'registry_changes_update',
        'registry_info',
      ]);
      raw.pragma('wal_checkpoint(TRUNCATE)');
      const before = readFileSync(file);

      // Read-only (a read command): answers by scanning, and the file is byte for byte the same.
      const ro = sb.run(['list', '-b', `sqlite:${file}`, '--where', 'tier=gold', '--json']);
      expect(ro.code, ro.stderr).to.equal(0);
      expect(ro.json<Listed>().items).to.have.length(10);
      expect(ro.json<Listed>().explain).to.deep.equal({ method: 'scan', scanned: 50 });
      raw.pragma('wal_checkpoint(TRUNCATE)');
      expect(readFileSync(file).equals(before), 'a read-only open wrote to the store').to.equal(true);
      expect(schema()).to.have.length(8); // the same 8 as above: nothing created

      // The first writable open builds it, in one transaction, and it answers the same.
      const w = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
      const page = await w.list({ where: [['tier', 'gold']] });
      expect(page.items).to.have.length(10);
      expect(page.plan).to.deep.equal({ method: 'index', field: 'tier', scanned: 10 });
      await w.close();
      expect(raw.prepare("SELECT count(*) FROM meta_index WHERE field = 'tier'").pluck().get()).to.equal(50);

      // Other fields asked for: rebuilt for them at the next writable open.
      const z = await ProcessRegistry.open({
        backend: `sqlite:${file}`,
        cleanupInterval: 0,
        backendOpts: { indexFields: ['zone'] },
      });
      expect((await z.list({ where: [['tier', 'gold']] })).plan).to.deep.equal({ method: 'scan', scanned: 50 });
      await z.close();
      expect(raw.prepare('SELECT count(*) FROM meta_index').pluck().get()).to.equal(0);
      raw.close();
    } finally {
      t.cleanup();
    }
  });

  it('count is exact without sweeping: dead processes judged once each, their rows left in place (CLI)', async () => {
    const db = join(sb.dir, 'count.db');
    const [a, b] = await spawnSleepers(2);
    const reg = await ProcessRegistry.open({ backend: `sqlite:${db}`, cleanupInterval: 0 });
    for (let i = 0; i < 30; i++) await reg.register(`a${i}`, a.pid, {});
    for (let i = 0; i < 20; i++) await reg.register(`b${i}`, b.pid, {});
    await reg.register('other-ns', b.pid, {}, { namespace: 'elsewhere' });
    await reg.close();
    await b.kill();
    const r = sb.run(['count', '-b', `sqlite:${db}`]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('30');
    const all = sb.run(['count', '-b', `sqlite:${db}`, '--all-namespaces', '--json']);
    expect(all.json()).to.deep.equal({ namespaces: { default: 30, elsewhere: 0 }, total: 30 });
    const raw = new (loadBetterSqlite())(db, { readonly: true });
    expect(raw.prepare('SELECT count(*) FROM registrations').pluck().get(), 'count removed nothing').to.equal(51);
    raw.close();
  });
});
