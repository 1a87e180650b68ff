/** `dump -o FILE` (issue 12 items 9 and 14): temp file + fsync + rename; a failed dump leaves the old file alone. */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';

describe('cli: dump -o writes atomically', function () {
  this.timeout(120_000);
  let sb: Sandbox;
  let store: string[];
  let mnt: string | undefined;
  before(async () => {
    sb = sandbox();
    const db = join(sb.dir, 'src.db');
    store = ['-b', `sqlite:${db}`];
    const reg = await ProcessRegistry.open({ backend: `sqlite:${db}`, cleanupInterval: 0 });
    try {
      // About 300 KiB of dump: far more than the 64 KiB file system below.
      const items = Array.from({ length: 2000 }, (_, i) => ({
        key: `svc-${i}`,
        pid: process.pid,
        meta: { role: 'worker', note: 'x'.repeat(80) },
      }));
      const r = await reg.bulkRegister(items);
      expect(r.every((x) => x.ok)).to.equal(true);
    } finally {
      await reg.close();
    }
  });
  after(() => {
    if (mnt) execFileSync('umount', [mnt]);
    sb.cleanup();
  });

  it('issue 12 item 9: a dump that hits ENOSPC leaves the existing backup byte-identical and no temp file', function () {
    if (process.getuid?.() !== 0) this.skip();
    mnt = join(sb.dir, 'tiny');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    const backup = join(mnt, 'backup.ndjson');
    // A good backup: a dump of a small store.
    const small = ['-b', `sqlite:${join(sb.dir, 'small.db')}`];
    expect(sb.run(['register', 'one', '-p', String(process.pid), ...small]).code).to.equal(0);
    const ok = sb.run(['dump', '-o', backup, ...small]);
    expect(ok.code, ok.stderr).to.equal(0);
    const before = readFileSync(backup);
    expect(before.toString()).to.match(/^\{"procreg":"dump"/);

    const r = sb.run(['dump', '-o', backup, ...store]);
    expect(r.code, r.stderr).to.equal(6);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.include(`cannot write ${backup}`).and.include('no space left');
    expect(lines[0]).to.not.match(/\.tmp-/);
    expect(readFileSync(backup).equals(before), 'the old backup survives byte-identical').to.equal(true);
    expect(readdirSync(mnt), 'no temporary file is left behind').to.deep.equal(['backup.ndjson']);

    // A dump that fits replaces it whole.
    const small2 = sb.run(['dump', '-o', backup, ...small, '--json']);
    expect(small2.code, small2.stderr).to.equal(0);
    expect(readdirSync(mnt)).to.deep.equal(['backup.ndjson']);
  });

  it('issue 12 item 14: dump -o into a missing directory: exit 2 naming the path', () => {
    const out = join(sb.dir, 'no-such-dir', 'backup.ndjson');
    const r = sb.run(['dump', '-o', out, ...store]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.include(out).and.include('does not exist');
    expect(r.stderr).to.not.match(/\.tmp|procreg-dump/);
  });

  it('issue 12 item 14: dump -o onto a directory: exit 2 naming the path, the directory untouched', () => {
    const out = join(sb.dir, 'a-dir');
    mkdirSync(out);
    writeFileSync(join(out, 'keep'), 'x');
    const r = sb.run(['dump', '-o', out, ...store]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.include(`${out} is a directory`);
    expect(readdirSync(out)).to.deep.equal(['keep']);
    expect(readdirSync(sb.dir).filter((f) => f.includes('.tmp'))).to.deep.equal([]);
  });
});
