/**
 * `import --atomic` through a node and on etcd checks every key before it uploads, then commits a
 * staged restore. A key another process registers between that check and the commit must fail the
 * commit (exit 4, naming the key), with nothing of the import written — not be overwritten.
 *
 * The race is real: the importing side stops at a pause point (src/core/test-pause.ts) after every
 * check it makes — the client's, and on etcd the commit's own read at its revision — right before
 * the commit; the test registers the conflicting key through another client or CLI process there,
 * then lets the commit go. Real nodes (in-process and `registry serve`), a real 3-member cluster.
 * 300 lines, so the etcd commit compares more keys than one txn holds ops (ranges).
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImportStoppedError, importEntries } from '../../src/registry/import.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { RegistryNode } from '../../src/node/server.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { spawnServe, startNode, type ServeProcess } from '../support/node.js';
import { waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const LINES = 300;
const TAKEN = 150; // imp-150 is line 151

describe('import --atomic: a key registered between the check and the commit', function () {
  this.timeout(300_000);
  let c: EtcdCluster;
  let sb: Sandbox;
  const t = tempDir('procreg-race-');
  const nodes: RegistryNode[] = [];
  const serves: ServeProcess[] = [];
  let file: string;
  let n = 0;

  before(async () => {
    c = await startEtcdCluster({ members: 3 });
    sb = sandbox();
    file = join(t.dir, 'imp.ndjson');
    writeFileSync(
      file,
      Array.from({ length: LINES }, (_, i) => JSON.stringify({ key: `imp-${i}`, pid: 5000 + i, node: 'far-import' }))
        .join('\n')
        .concat('\n'),
    );
  });
  after(async () => {
    delete process.env.PROCREG_TEST_PAUSE;
    for (const x of nodes) await x.close().catch(() => undefined);
    for (const s of serves) if (s.child.exitCode === null) s.child.kill('SIGTERM');
    await Promise.all(serves.map((s) => s.exited.catch(() => undefined)));
    await c?.stop();
    sb?.cleanup();
    t.cleanup();
  });

  /** A fresh pause directory; the env value that makes a process stop at `point` there. */
  const pausing = (point: string) => {
    const dir = join(t.dir, `pause-${n++}`);
    mkdirSync(dir);
    return { dir, env: `${point}:${dir}`, ready: join(dir, `${point}.ready`), go: join(dir, `${point}.go`) };
  };

  /** The store holds exactly the conflicting registration, none of the import. */
  async function expectOnlyTheConflict(url: string, ns: string): Promise<void> {
    const reg = await ProcessRegistry.open({ backend: url, namespace: ns, cleanupInterval: 0 });
    try {
      const keys: string[] = [];
      for await (const e of reg.entries({ namespace: ns })) keys.push(`${e.key}:${e.pid}:${e.node}`);
      expect(keys).to.deep.equal([`imp-${TAKEN}:4242:far`]);
    } finally {
      await reg.close();
    }
  }

  /** Library: import into `url`, stopping at `point`; register the conflict through another client. */
  async function libraryRace(url: string, point: string): Promise<void> {
    const ns = `race${n}`;
    const p = pausing(point);
    process.env.PROCREG_TEST_PAUSE = p.env;
    const importer = await ProcessRegistry.open({ backend: url, namespace: ns, cleanupInterval: 0 });
    const other = await ProcessRegistry.open({ backend: url, namespace: ns, cleanupInterval: 0 });
    try {
      const done = importEntries(importer, file, { atomic: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await waitFor(() => existsSync(p.ready), 60_000, `the import to reach ${point}`);
      // After every check the import makes: the commit alone can see this.
      await other.register(`imp-${TAKEN}`, 4242, {}, { node: 'far' });
      writeFileSync(p.go, '');
      const err = await done;
      expect(err, 'the import must fail').to.be.instanceOf(ImportStoppedError);
      const e = err as ImportStoppedError;
      expect(e.code).to.equal('ALREADY_REGISTERED');
      expect(e.exitCode).to.equal(4);
      expect(e.problem.line).to.equal(TAKEN + 1);
      expect(e.problem.holder).to.include({ key: `imp-${TAKEN}`, pid: 4242, node: 'far' });
      expect(e.message).to.include(`"imp-${TAKEN}"`).and.include('nothing was written');
      await expectOnlyTheConflict(url, ns);
    } finally {
      delete process.env.PROCREG_TEST_PAUSE;
      await importer.close();
      await other.close();
    }
  }

  /** CLI: `registry import --atomic` against `url` (the pause in `pauseIn` or the CLI's own env). */
  async function cliRace(url: string, p: ReturnType<typeof pausing>, importEnv: NodeJS.ProcessEnv): Promise<void> {
    const ns = `clirace${n}`;
    const imp = sb.start(['import', file, '--atomic', '-n', ns, '-b', url], { env: importEnv });
    await waitFor(() => existsSync(p.ready) || imp.child.exitCode !== null, 60_000, 'the import to pause');
    expect(imp.child.exitCode, 'the import ended before its commit').to.equal(null);
    const reg = sb.run(['register', `imp-${TAKEN}`, '--pid', '4242', '--node', 'far', '-n', ns, '-b', url]);
    expect(reg.code, reg.stderr).to.equal(0);
    writeFileSync(p.go, '');
    const r = await imp.done;
    expect(r.code, r.stdout + r.stderr).to.equal(4);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^registry: /);
    expect(r.stderr)
      .to.include(`line ${TAKEN + 1}`)
      .and.include(`"imp-${TAKEN}"`)
      .and.include('held by pid 4242 on far')
      .and.include('nothing was written');
    const list = sb.run(['list', '-n', ns, '-o', 'name', '--no-headers', '-b', url]);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout.split('\n').filter(Boolean)).to.deep.equal([`${ns}/imp-${TAKEN}`]);
  }

  describe('library', () => {
    for (const store of ['memory', 'sqlite'] as const)
      it(`through a node on ${store}: refused inside the node's transaction, nothing written`, async () => {
        const node = await startNode(store === 'memory' ? 'memory:' : `sqlite:${join(t.dir, `lib-${n}.db`)}`);
        nodes.push(node);
        await libraryRace(node.url, 'node-import-commit');
      });

    it('on etcd: the commit txn compares every key (range compares), nothing written', async () => {
      await libraryRace(c.url('/race-lib'), 'etcd-import-commit');
    });

    it('through a node on etcd: the same compare on the node side', async () => {
      const node = await startNode(c.url('/race-lib-node'));
      nodes.push(node);
      await libraryRace(node.url, 'etcd-import-commit');
    });

    it('on etcd: a write to another key inside the compared ranges only retries the commit', async () => {
      const url = c.url('/race-unrelated');
      const p = pausing('etcd-import-commit');
      process.env.PROCREG_TEST_PAUSE = p.env;
      const importer = await ProcessRegistry.open({ backend: url, namespace: 'un', cleanupInterval: 0 });
      const other = await ProcessRegistry.open({ backend: url, namespace: 'un', cleanupInterval: 0 });
      try {
        const done = importEntries(importer, file, { atomic: true });
        await waitFor(() => existsSync(p.ready), 60_000, 'the import to reach its commit');
        // Sorts between imp-150 and imp-151: inside a compared range, but not a key of the import.
        await other.register(`imp-${TAKEN}x`, 4242, {}, { node: 'far' });
        writeFileSync(p.go, '');
        expect(await done).to.include({ written: LINES, method: 'staged' });
        expect(await importer.count({ namespace: 'un' })).to.equal(LINES + 1);
        expect((await importer.lookup(`imp-${TAKEN}x`))?.pid).to.equal(4242);
        expect((await importer.lookup(`imp-${TAKEN}`))?.pid).to.equal(5000 + TAKEN);
      } finally {
        delete process.env.PROCREG_TEST_PAUSE;
        await importer.close();
        await other.close();
      }
    });

    it('without a race the guarded commit writes every line (etcd, more keys than one txn holds)', async () => {
      const reg = await ProcessRegistry.open({ backend: c.url('/race-clean'), namespace: 'clean', cleanupInterval: 0 });
      try {
        // A holder the import may replace (the same process) and one of another namespace beside it.
        await reg.register('imp-7', 5007, { old: true }, { node: 'far-import' });
        await reg.register('imp-8', 4242, {}, { node: 'far', namespace: 'other' });
        const r = await importEntries(reg, file, { atomic: true });
        expect(r).to.include({ written: LINES, method: 'staged' });
        expect(await reg.count({ namespace: 'clean' })).to.equal(LINES);
        expect((await reg.lookup('imp-7'))?.meta).to.deep.equal({});
      } finally {
        await reg.close();
      }
    });
  });

  describe('cli', () => {
    it('registry import --atomic -b http://node (SQLite): exit 4 naming the key, nothing written', async () => {
      const p = pausing('node-import-commit');
      const node = await spawnServe(['-b', `sqlite:${join(t.dir, 'cli-node.db')}`], {
        ...sb.env,
        PROCREG_TEST_PAUSE: p.env,
      });
      serves.push(node);
      await cliRace(node.url, p, {});
    });

    it('registry import --atomic -b etcd://…: exit 4 naming the key, nothing written', async () => {
      const p = pausing('etcd-import-commit');
      await cliRace(c.url('/race-cli'), p, { PROCREG_TEST_PAUSE: p.env });
    });

    it('registry import --atomic -b http://node (etcd): exit 4 naming the key, nothing written', async () => {
      const p = pausing('etcd-import-commit');
      const node = await spawnServe(['-b', c.url('/race-cli-node')], { ...sb.env, PROCREG_TEST_PAUSE: p.env });
      serves.push(node);
      await cliRace(node.url, p, {});
    });
  });
});
