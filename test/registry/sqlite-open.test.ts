/**
 * The SQLite backend's open path through the library (issue 12 items 1, 7, 15, 14): opening for
 * reading creates nothing, `checkIntegrity` finds a damaged file, many processes creating one new
 * file at once all succeed, and a full disk or an impossible folder is a typed error (exit 6).
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NoRegistryError, RegistryError, UnreachableError } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const ENTRY = fileURLToPath(new URL('../../src/index.js', import.meta.url));

const open = (file: string, o: { create?: boolean } = {}) =>
  ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0, stats: false, nodeName: 'n1', ...o });

async function rejection(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(RegistryError);
    return err as RegistryError;
  }
  throw new Error('expected a rejection');
}

describe('sqlite backend: the open path', function () {
  this.timeout(180_000);
  const t = tempDir('procreg-sqlite-open-');
  after(async () => {
    await killAllSleepers();
    t.cleanup();
  });

  it('item 1: create: false on a missing file is NoRegistryError (exit 6) and leaves no file or folder', async () => {
    const top = join(t.dir, 'absent');
    const err = await rejection(open(join(top, 'sub', 'r.db'), { create: false }));
    expect(err).to.be.instanceOf(NoRegistryError);
    expect(err.code).to.equal('UNREACHABLE');
    expect(err.exitCode).to.equal(6);
    expect(err.message).to.match(/^no registry at .*absent\/sub\/r\.db: /);
    expect(existsSync(top)).to.equal(false);
    // Nor do legacy stores, whatever their backendOpts say.
    const legacy = await rejection(
      ProcessRegistry.open({ backend: `legacy:${join(top, 'old.db')}`, backendOpts: { create: true }, create: false }),
    );
    expect(legacy.exitCode).to.equal(6);
    expect(existsSync(top)).to.equal(false);
    // An empty file (touch) holds no registry either, and gets no schema from a reader.
    mkdirSync(top);
    closeSync(openSync(join(top, 'empty.db'), 'w'));
    expect(await rejection(open(join(top, 'empty.db'), { create: false }))).to.be.instanceOf(NoRegistryError);
    expect(statSync(join(top, 'empty.db')).size).to.equal(0);
    // A write opener creates it; then a reader opens it.
    const w = await open(join(top, 'sub', 'r.db'));
    await w.register('k', process.pid);
    await w.close();
    const r = await open(join(top, 'sub', 'r.db'), { create: false });
    expect((await r.lookup('k'))?.pid).to.equal(process.pid);
    await r.close();
  });

  it('item 15: 30 processes opening and writing one new file at the same moment all succeed', async () => {
    const file = join(t.dir, 'race', 'fresh.db');
    const p = await spawnSleeper();
    // Each child loads the library, says "ready", and opens only on "go": the opens collide.
    const script = `const { ProcessRegistry } = await import(${JSON.stringify(ENTRY)});
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        const r = await ProcessRegistry.open({ backend: ${JSON.stringify(`sqlite:${file}`)}, cleanupInterval: 0, nodeName: 'n1' });
        await r.register('k' + process.argv[1], ${p.pid}); await r.close(); process.exit(0);
      });`;
    const children = Array.from({ length: 30 }, (_, i) => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', script, String(i)], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
        c.on('close', (code) => resolve({ code, stderr })),
      );
      return { c, done, ready: () => stdout.includes('ready') };
    });
    await waitFor(() => children.every((x) => x.ready()), 120_000, 'every child to load the library');
    for (const x of children) x.c.stdin.write('go\n');
    for (const r of await Promise.all(children.map((x) => x.done))) expect(r.code, r.stderr).to.equal(0);
    const reg = await open(file, { create: false });
    expect(await reg.count()).to.equal(30);
    await reg.close();
  });

  it('item 7: checkIntegrity passes a sound file and names the damage of a broken one; assertIntact refuses it', async () => {
    const file = join(t.dir, 'integrity.db');
    const reg = await open(file);
    await reg.bulkRegister(
      Array.from({ length: 5000 }, (_, i) => ({ key: `svc-${i}`, pid: 100 + i, node: 'far', meta: { i } })),
    );
    const good = await reg.backend.checkIntegrity!();
    expect(good.ok).to.equal(true);
    expect(good.problems).to.deep.equal([]);
    expect(good.checkMs).to.be.a('number');
    expect((await reg.assertIntact())?.ok).to.equal(true);
    // The root page of the table health's counting reads (the per-process counts): damage there is seen by both.
    const db = (reg.backend as unknown as { db: { prepare(sql: string): { pluck(): { get(): number } } } }).db;
    const root = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'proc_counts'").pluck().get();
    await reg.close();
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, (root - 1) * 4096);
    closeSync(fd);
    const broken = await open(file, { create: false });
    try {
      const bad = await broken.backend.checkIntegrity!();
      expect(bad.ok).to.equal(false);
      expect(bad.problems.length).to.be.within(1, 5);
      const err = await rejection(broken.assertIntact());
      expect(err).to.be.instanceOf(UnreachableError);
      expect(err.exitCode).to.equal(6);
      expect(err.message).to.match(/integrity\.db is damaged \(.+\): nothing was read/);
      expect(err.message).to.not.include('\n');
      const h = await broken.healthCheck();
      expect(h.status).to.equal('unhealthy');
      expect(h.reasons.join(' ')).to.match(/integrity\.db/);
    } finally {
      await broken.close();
    }
  });

  it('item 14: sqlite:/proc/foo/r.db fails at once with the folder named (no endless recursive mkdir)', async () => {
    const t0 = Date.now();
    const err = await rejection(open('/proc/foo/r.db'));
    expect(err.exitCode).to.equal(6);
    expect(err.message).to.match(/^cannot create the folder \/proc\/foo for \/proc\/foo\/r\.db \(ENOENT/);
    expect(Date.now() - t0).to.be.lessThan(5_000);
  });

  describe('item 14: a full disk (a tiny tmpfs)', () => {
    const mnt = join(t.dir, 'tiny');
    let mounted = false;
    let sb: Sandbox;
    before(function () {
      mkdirSync(mnt, { recursive: true });
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=192k', 'tmpfs', mnt], { encoding: 'utf8' });
      if (m.status !== 0) {
        // Not root, or no mount namespace: say why rather than pass.
        console.warn(`skipped: cannot mount a tmpfs (${m.stderr.trim() || m.error?.message})`);
        this.skip();
      }
      mounted = true;
      sb = sandbox();
    });
    after(() => {
      sb?.cleanup();
      if (mounted) spawnSync('umount', [mnt]);
    });

    it('a write that finds no space is exit 6 with code and exitCode, library and CLI', async () => {
      const file = join(mnt, 'full.db');
      const reg = await open(file);
      const big = 'x'.repeat(30_000);
      let err: RegistryError | undefined;
      try {
        for (let i = 0; i < 100 && !err; i++) {
          err = await reg.register(`k${i}`, process.pid, { big }).then(
            () => undefined,
            (e: RegistryError) => e,
          );
        }
      } finally {
        await reg.close().catch(() => undefined);
      }
      expect(err, 'the disk filled up').to.be.instanceOf(UnreachableError);
      expect(err!.code).to.equal('UNREACHABLE');
      expect(err!.exitCode).to.equal(6);
      expect(err!.message).to.match(/^no space left to write .*full\.db \(.*\): free space on its disk, then retry$/);
      const r = sb.run([
        'register',
        'one-more',
        '--pid',
        String(process.pid),
        '--meta',
        `big=${big}`,
        '-b',
        `sqlite:${file}`,
      ]);
      expect(r.code, r.stderr).to.equal(6);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/^registry: no space left to write .*full\.db/);
      expect(readdirSync(mnt)).to.include('full.db');
    });
  });
});
