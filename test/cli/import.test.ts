/**
 * `registry import` through the real CLI (issue 14 §2): NDJSON and CSV files and stdin, a bad
 * line with and without --atomic / --skip-invalid (the store read back: exactly the lines before
 * it, or nothing), a real node, a real 3-member etcd cluster, the REPL, and an --atomic import
 * SIGKILLed part way that leaves nothing.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { sandbox, BIN, type Sandbox } from '../support/cli.js';
import { spawnServe, type ServeProcess } from '../support/node.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/processes.js';
import { sigkill } from '../support/restore.js';
import type { ImportResult } from '../../src/registry/import.js';
import { ProcessRegistry } from '../../src/registry/service.js';

/** `n` NDJSON entries of node "other" (alive as far as this host can tell). */
function entries(n: number, tag = 'k'): string[] {
  return Array.from({ length: n }, (_, i) => JSON.stringify({ key: `${tag}${i}`, pid: 100 + i, node: 'other' }));
}

describe('cli: registry import', function () {
  this.timeout(300_000);
  let sb: Sandbox;
  let db: string[];
  let dbUrl: string;
  before(() => {
    sb = sandbox();
    dbUrl = `sqlite:${join(sb.dir, 'imp.db')}`;
    db = ['-b', dbUrl];
  });
  after(() => sb.cleanup());

  const file = (name: string, lines: string[]) => {
    const f = join(sb.dir, name);
    writeFileSync(f, `${lines.join('\n')}\n`);
    return f;
  };
  const keys = (ns: string, store = db) => {
    const r = sb.run(['list', '-n', ns, '-o', 'name', '--no-headers', ...store]);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('imports an NDJSON file in order; nothing on stderr when piped; --json counts', () => {
    const f = file('a.ndjson', entries(50));
    const r = sb.run(['import', f, '-n', 'a', ...db]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('imported 50 of 50 entries\n');
    expect(r.stderr).to.equal('');
    expect(keys('a')).to.have.length(50);
    const j = sb.run(['import', f, '-n', 'a2', '--json', ...db]).json<ImportResult>();
    expect(j).to.include({ lines: 50, written: 50, format: 'ndjson', mode: 'stop-at-first' });
  });

  it('imports CSV from stdin (-): header row, node, namespace and meta.* columns', () => {
    const csv = 'key,pid,node,namespace,meta.role,meta.port\nweb-1,11,h1,,web,8080\nweb-2,12,h2,csv2,web,\n';
    const r = sb.run(['import', '-', '--format', 'csv', '-n', 'csv', ...db], { input: csv });
    expect(r.code, r.stderr).to.equal(0);
    const got = sb.run(['lookup', 'web-1', '-n', 'csv', '--json', ...db]).json<{ meta: unknown; node: string }>();
    expect(got).to.deep.include({ node: 'h1', meta: { role: 'web', port: 8080 } });
    expect(keys('csv2')).to.deep.equal(['csv2/web-2']);
  });

  it('a bad line: exit 2, one line naming it and the reason, exactly the lines before it written', () => {
    const lines = entries(30);
    lines[17] = '{"key":"x","pid":"twelve","node":"other"}';
    const r = sb.run(['import', file('bad.ndjson', lines), '-n', 'bad', ...db]);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
    expect(r.stderr).to.match(
      /^registry: .*bad\.ndjson line 18: invalid pid "twelve".*the 17 entries before it were written/,
    );
    expect(keys('bad')).to.have.length(17);
    const j = sb.run(['import', join(sb.dir, 'bad.ndjson'), '-n', 'bad-j', '--json', ...db]);
    expect(j.code).to.equal(2);
    expect(j.json<{ error: { line: number; written: number } }>().error).to.include({ line: 18, written: 17 });
  });

  it('--atomic: a bad line writes nothing (exit 2)', () => {
    const lines = entries(30);
    lines[29] = '[1,2]';
    const r = sb.run(['import', file('bad2.ndjson', lines), '--atomic', '-n', 'atomic', ...db]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('line 30').and.include('nothing was written (--atomic)');
    expect(keys('atomic')).to.deep.equal([]);
    const ok = sb.run(['import', join(sb.dir, 'a.ndjson'), '--atomic', '-n', 'atomic', ...db]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.include('all at once (one transaction)');
    expect(keys('atomic')).to.have.length(50);
  });

  it('--skip-invalid: writes the rest, lists skipped lines on stderr and in --json', () => {
    const lines = entries(10);
    lines[2] = '{"key":"y"}';
    lines[6] = 'garbage';
    const f = file('skip.ndjson', lines);
    const r = sb.run(['import', f, '--skip-invalid', '-n', 'skip', ...db]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('imported 8 of 10 entries (2 skipped)\n');
    expect(r.stderr)
      .to.match(/skipped line 3: invalid pid/)
      .and.match(/skipped line 7: not valid JSON/);
    const j = sb.run(['import', f, '--skip-invalid', '-n', 'skip-j', '--json', ...db]).json<ImportResult>();
    expect(j.written).to.equal(8);
    expect(j.skipped.map((s) => s.line)).to.deep.equal([3, 7]);
    expect(sb.run(['import', f, '--skip-invalid', '--atomic', ...db]).code).to.equal(2);
  });

  it('CSV with broken quoting: exit 2 naming the line; --skip-invalid is suggested only where it can help', () => {
    const f = join(sb.dir, 'broken.csv');
    writeFileSync(f, 'key,pid\n"broken,1\nok,2\n');
    for (const extra of [[], ['--skip-invalid']]) {
      const r = sb.run(['import', f, '--format', 'csv', '-n', 'broken', ...extra, ...db]);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr).to.match(
        /^registry: .*broken\.csv line \d+: not valid CSV.*nothing was written: fix the line and import the rest\n$/,
      );
      expect(r.stderr, 'the rest cannot be read: skipping cannot help').to.not.include('--skip-invalid');
    }
    expect(keys('broken')).to.deep.equal([]);
  });

  it("a key held by another live process: exit 4 like register's", () => {
    expect(sb.run(['register', 'k3', '--pid', '777', '--node', 'far', '-n', 'held', ...db]).code).to.equal(0);
    const r = sb.run(['import', join(sb.dir, 'a.ndjson'), '-n', 'held', ...db]);
    expect(r.code).to.equal(4);
    expect(r.stderr).to.include('line 4').and.include('held by pid 777 on far');
    expect(keys('held')).to.deep.equal(['held/k0', 'held/k1', 'held/k2', 'held/k3']);
  });

  it('a missing file, a directory, a dump: exit 2 with what to do', () => {
    expect(sb.run(['import', join(sb.dir, 'nope.ndjson'), ...db]).stderr).to.match(/cannot read .*no such file/);
    expect(sb.run(['import', sb.dir, ...db]).code).to.equal(2);
    const dump = join(sb.dir, 'd.ndjson');
    expect(sb.run(['dump', '-o', dump, '-n', 'a', ...db]).code).to.equal(0);
    const r = sb.run(['import', dump, ...db]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('registry restore');
  });

  describe('through a real node and on a real 3-member etcd cluster', () => {
    // A `registry serve` child: sb.run blocks this process, so an in-process node could not answer.
    let node: ServeProcess;
    let cluster: EtcdCluster;
    before(async () => {
      node = await spawnServe(['-b', `sqlite:${join(sb.dir, 'node.db')}`], sb.env);
      cluster = await startEtcdCluster({ members: 3 });
    });
    after(async () => {
      if (node) await sigkill(node.child);
      await cluster?.stop();
    });

    for (const which of ['node', 'etcd'] as const) {
      it(`${which}: NDJSON and CSV import, a bad line with and without --atomic`, () => {
        const store = ['-b', which === 'node' ? node.url : cluster.url('/cli-imp')];
        const ok = sb.run(['import', join(sb.dir, 'a.ndjson'), '-n', 'r', ...store, '--batch-size', '7']);
        expect(ok.code, ok.stderr).to.equal(0);
        expect(keys('r', store)).to.have.length(50);
        const csv = sb.run(['import', '-', '--format', 'csv', '-n', 'rc', ...store], {
          input: 'key,pid,node\na,1,x\nb,2,x\n',
        });
        expect(csv.code, csv.stderr).to.equal(0);
        expect(keys('rc', store)).to.deep.equal(['rc/a', 'rc/b']);
        const bad = sb.run(['import', join(sb.dir, 'bad.ndjson'), '-n', 'rb', ...store]);
        expect(bad.code).to.equal(2);
        expect(keys('rb', store)).to.have.length(17);
        const atomic = sb.run(['import', join(sb.dir, 'bad.ndjson'), '-n', 'ra', '--atomic', ...store]);
        expect(atomic.code).to.equal(2);
        expect(keys('ra', store)).to.deep.equal([]);
        const whole = sb.run(['import', join(sb.dir, 'a.ndjson'), '-n', 'ra', '--atomic', ...store]);
        expect(whole.code, whole.stderr).to.equal(0);
        expect(whole.stdout).to.include('all at once (staged)');
        expect(keys('ra', store)).to.have.length(50);
      });
    }
  });

  it('the REPL runs import FILE (and refuses import -: stdin is its input)', async () => {
    const f = join(sb.dir, 'a.ndjson');
    const child = spawn(process.execPath, [BIN, 'repl', ...db], {
      env: sb.env,
      cwd: sb.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(`import ${f} -n repl\ncount -n repl\nimport - -n repl\n`);
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(out).to.equal('imported 50 of 50 entries\n50\n');
    expect(code).to.equal(2);
    expect(err).to.include("import - reads stdin, which is the REPL's input");
  });

  describe('a SIGKILLed --atomic import leaves nothing', () => {
    const N = 200_000;
    let big: string;
    before(() => {
      big = file('big.ndjson', entries(N, 'big'));
    });
    const spools = (pid: number) => readdirSync(tmpdir()).filter((f) => f.startsWith(`.procreg-import-${pid}-`));
    const count = async (url: string, ns: string) => {
      const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
      try {
        return await reg.count({ namespace: ns });
      } finally {
        await reg.close();
      }
    };

    for (const when of ['checking', 'applying'] as const) {
      it(`sqlite: killed while ${when}: the store holds nothing of it`, async () => {
        const url = `sqlite:${join(sb.dir, `kill-${when}.db`)}`;
        const { child, done } = sb.start(['import', big, '--atomic', '-n', 'kill', '-b', url]);
        const pid = child.pid!;
        await waitFor(() => spools(pid).length > 0, 60_000, 'the import to start checking');
        if (when === 'applying') {
          // The transaction writes: the WAL grows past its initial size.
          const wal = `${url.slice('sqlite:'.length)}-wal`;
          await waitFor(() => existsSync(wal) && statSync(wal).size > 1 << 20, 120_000, 'the transaction to write');
        }
        await sigkill(child);
        const r = await done;
        expect(r.code, `the import finished before the kill: ${r.stdout}`).to.equal(null);
        for (const f of spools(pid)) rmSync(join(tmpdir(), f));
        expect(await count(url, 'kill')).to.equal(0);
      });
    }

    it('through a node: killed while uploading: the node store holds nothing of it', async () => {
      const node = await spawnServe(['-b', `sqlite:${join(sb.dir, 'kill-node.db')}`], sb.env);
      try {
        const { child, done } = sb.start(['import', big, '--atomic', '-n', 'kill', '-b', node.url]);
        const pid = child.pid!;
        await waitFor(
          async () => {
            const s = (await (await fetch(`${node.url}/v1/stats`)).json()) as {
              restores?: { staging?: Array<{ staged: number }> };
            };
            return (s.restores?.staging?.[0]?.staged ?? 0) > 0;
          },
          120_000,
          'the upload to start',
        );
        await sigkill(child);
        const r = await done;
        expect(r.code).to.equal(null);
        for (const f of spools(pid)) rmSync(join(tmpdir(), f));
        expect(await count(node.url, 'kill')).to.equal(0);
      } finally {
        await sigkill(node.child);
      }
    });
  });
});
