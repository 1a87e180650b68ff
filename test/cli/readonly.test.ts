/**
 * The SQLite open path through the real `registry` binary (issue 12 items 1, 7, 15 and 14's
 * SQLite part): reads never create a store; a damaged file never yields a valid-looking dump; a new
 * file opened by many processes at once is created once; a locked file, a full disk and an
 * impossible folder each give their exit code and one line naming the cause.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, existsSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { sandbox, type CliResult, type Sandbox } from '../support/cli.js';
import { ProcessRegistry } from '../../src/registry/service.js';

let sb: Sandbox;
const BETTER_SQLITE = createRequire(import.meta.url).resolve('better-sqlite3');

/** One line on stderr, naming `what`, no stack trace, nothing on stdout. */
function oneLine(r: CliResult, what: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^registry: /);
  expect(lines[0]).to.match(what);
  expect(r.stderr).to.not.match(/internal error|\n\s+at /);
}

/** Fill a SQLite file with `n` entries held by a live process of another node (never swept). */
async function filled(file: string, n: number): Promise<void> {
  const reg = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, stats: false });
  for (let i = 0; i < n; i += 5000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 5000); j++)
      batch.push({ key: `svc-${j}`, pid: 100 + j, node: 'far', meta: { j } });
    await reg.bulkRegister(batch);
  }
  await reg.close();
}

/** Overwrite `pages` pages spread over the file (never page 1, the schema) with seeded random bytes. */
function damage(file: string, pages: number): void {
  const pageSize = 4096;
  const count = Math.floor(statSync(file).size / pageSize);
  const fd = openSync(file, 'r+');
  let seed = 12345;
  const junk = Buffer.alloc(pageSize);
  try {
    for (let i = 0; i < pages; i++) {
      for (let b = 0; b < pageSize; b++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        junk[b] = seed & 0xff;
      }
      const page = 1 + Math.floor(((i + 0.5) * (count - 1)) / pages);
      writeSync(fd, junk, 0, pageSize, page * pageSize);
    }
  } finally {
    closeSync(fd);
  }
}

describe('registry CLI: the SQLite open path', function () {
  this.timeout(180_000);
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('item 1: every read-only command on a missing sqlite: path exits 6 naming it and creates nothing', () => {
    const top = join(sb.dir, 'nowhere');
    const url = `sqlite:${join(top, 'deeper', 'x.db')}`;
    const b = ['-b', url];
    const reads: string[][] = [
      ['lookup', 'web-1', ...b], // the fast path (bin/run.js)
      ['lookup', 'web-1', '--json', '--namespace', 'jobs', ...b],
      ['lookup', 'web-1', '--field', 'pid', '--node-name', 'n1', ...b, '--config', join(sb.dir, 'none.json')],
      ['list', ...b],
      ['list', '--all-namespaces', ...b],
      ['count', ...b],
      ['count', '--all-namespaces', ...b],
      ['dump', ...b],
      ['meta', 'get', 'web-1', ...b],
      ['stats', ...b],
      ['watch', '--timeout', '1', ...b],
      ['health', ...b],
      ['report', '--backends', url],
      ['migrate', 'plan', '--from', url],
      ['repl', ...b],
    ];
    for (const args of reads) {
      const r = sb.run(args, { input: 'lookup web-1\n' });
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).to.equal(6);
      if (args.includes('--json'))
        expect(r.json<{ error: { code: string; message: string } }>().error).to.include({ code: 'UNREACHABLE' });
      else if (!['health', 'report'].includes(args[0]!))
        oneLine(r, /no registry at .*nowhere\/deeper\/x\.db: check the path/);
      expect(existsSync(top), `${args.join(' ')} created ${top}`).to.equal(false);
    }
  });

  it('item 1: verify of two mistyped paths is exit 6, not "equivalent", and creates neither', () => {
    const r = sb.run(['verify', 'sqlite:typo-a.db', 'sqlite:typo-b.db']);
    expect(r.code, r.stdout + r.stderr).to.equal(6);
    expect(r.stdout).to.not.match(/equivalent/);
    oneLine(r, /no registry at .*typo-a\.db/);
    expect(readdirSync(join(sb.dir, 'work'))).to.deep.equal([]);
    const legacy = sb.run(['count', '-b', `legacy:${join(sb.dir, 'old', 'gone.db')}`]);
    expect(legacy.code).to.equal(6);
    expect(existsSync(join(sb.dir, 'old'))).to.equal(false);
  });

  it('item 1: the REPL on a missing file creates it on the first write, not before', async () => {
    const p = await spawnSleeper();
    const file = join(sb.dir, 'later', 'repl.db');
    const b = ['-b', `sqlite:${file}`, '--keep-going'];
    const reads = sb.run(['repl', ...b], { input: 'lookup web-1\ncount\nlist\nhealth\n' });
    expect(reads.code, reads.stderr).to.equal(6);
    expect(reads.stderr).to.match(/no registry at .*later\/repl\.db/);
    expect(existsSync(join(sb.dir, 'later')), 'reads in the REPL create nothing').to.equal(false);
    const writes = sb.run(['repl', ...b], { input: `lookup web-1\nregister web-1 --pid ${p.pid}\ncount\n` });
    expect(writes.code, 'the first lookup still failed').to.equal(6);
    expect(writes.stdout).to.match(/registered web-1/);
    expect(writes.stdout.trim().split('\n').at(-1)).to.equal('1');
    expect(existsSync(file)).to.equal(true);
    // The writes work once it exists, from the CLI too.
    expect(sb.run(['lookup', 'web-1', '--field', 'pid', '-b', `sqlite:${file}`]).stdout.trim()).to.equal(String(p.pid));
  });

  it('item 7: a damaged file: dump, count -A and list -A exit 6 with no output; health is unhealthy (exit 5)', async () => {
    const file = join(sb.dir, 'damaged.db');
    await filled(file, 20_000);
    expect(sb.run(['count', '-A', '-b', `sqlite:${file}`]).stdout.trim()).to.equal('default\t20000');
    damage(file, 40);
    const b = ['-b', `sqlite:${file}`];
    for (const args of [['dump'], ['count', '--all-namespaces'], ['list', '--all-namespaces']]) {
      const r = sb.run([...args, ...b]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(6);
      expect(r.stdout, `${args.join(' ')} printed nothing`).to.equal('');
      oneLine(r, /damaged.db is damaged \(.+\): nothing was read; restore it/);
    }
    const out = join(sb.dir, 'backup.ndjson');
    const d = sb.run(['dump', '-o', out, ...b]);
    expect(d.code).to.equal(6);
    expect(existsSync(out), 'no backup file').to.equal(false);
    const h = sb.run(['health', '--json', ...b]);
    expect(h.code, h.stdout + h.stderr).to.equal(5);
    expect(h.stdout).to.match(/"status": "unhealthy"/);
    expect(h.stdout).to.match(/malformed|not a usable/);
  });

  it('item 15: 30 processes registering on one new file at once all succeed, the schema made once', async () => {
    const file = join(sb.dir, 'race', 'fresh.db');
    const p = await spawnSleeper();
    const runs = Array.from(
      { length: 30 },
      (_, i) => sb.start(['register', `k${i}`, '--pid', String(p.pid), '-b', `sqlite:${file}`]).done,
    );
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).to.equal(0);
    const count = sb.run(['count', '-b', `sqlite:${file}`]);
    expect(count.stdout.trim()).to.equal('30');
  });

  it('item 14: a file write-locked by another process: exit 6 with a hint, after busy_timeout', async () => {
    const file = join(sb.dir, 'locked.db');
    await filled(file, 1);
    const p = await spawnSleeper();
    // Another real process holds the write lock until its stdin closes.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const D = require(${JSON.stringify(BETTER_SQLITE)}); const db = new D(${JSON.stringify(file)}); db.exec('BEGIN IMMEDIATE');
         db.prepare("INSERT INTO registry_info VALUES ('held', '1')").run(); process.stdout.write('locked\\n');
         process.stdin.on('end', () => { db.exec('ROLLBACK'); db.close(); }); process.stdin.resume();`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      let out = '';
      holder.stdout.on('data', (d) => (out += d));
      await waitFor(() => out.includes('locked'), 30_000, 'the holder to take the write lock');
      const t0 = Date.now();
      const r = sb.run(['register', 'blocked', '--pid', String(p.pid), '-b', `sqlite:${file}`]);
      expect(r.code, r.stderr).to.equal(6);
      expect(Date.now() - t0, 'waited for busy_timeout first').to.be.greaterThan(4_500);
      oneLine(
        r,
        /locked\.db is locked by another process .*: retry when it is done, or raise backendOpts\.busyTimeout/,
      );
      // Reads still work (WAL): only writers wait.
      expect(sb.run(['lookup', 'svc-0', '--field', 'node', '-b', `sqlite:${file}`]).stdout.trim()).to.equal('far');
    } finally {
      holder.stdin.end();
      await new Promise((resolve) => holder.on('close', resolve));
    }
    const after = sb.run(['register', 'blocked', '--pid', String(p.pid), '-b', `sqlite:${file}`]);
    expect(after.code, after.stderr).to.equal(0);
  });

  it('item 14: sqlite:/proc/foo/r.db exits 6 at once naming the folder (no endless mkdir)', () => {
    const t0 = Date.now();
    const reg = sb.run(['register', 'x', '--pid', String(process.pid), '-b', 'sqlite:/proc/foo/r.db']);
    expect(reg.code, reg.stderr).to.equal(6);
    oneLine(reg, /cannot create the folder \/proc\/foo for \/proc\/foo\/r\.db \(ENOENT.*\): check the path/);
    expect(Date.now() - t0).to.be.lessThan(30_000);
  });
});
