/**
 * The phases move live nodes (issue 14 §5): `migrate cutover --node URL` switches a running node
 * from the legacy store to the hybrid, and `migrate rollback` moves it back; a node that keeps
 * serving registrations through both moves loses none. Through the CLI as a real process; the node
 * runs in this process. Also `registry node switch` SQLite → SQLite through the CLI, with its report.
 */
import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RemoteBackend } from '../../src/backends/remote.js';
import { Migration, PROFILE, rollback } from '../../src/migrations/index.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster } from '../support/etcd-cluster.js';
import { startNode } from '../support/node.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture, FIXTURE_NODE } from './support.js';

describe('migrate --node: the phases move live nodes', function () {
  this.timeout(180_000);
  const t = tempDir('procreg-nodes-');
  after(() => t.cleanup());

  it('cutover --node switches the running node to the hybrid; rollback moves it back', async () => {
    const { path } = fixture('clean', t.dir);
    const legacy = `legacy:${path}`;
    const run = async (args: string[], code = 0) => {
      const r = await cli(args, { cwd: t.dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).to.equal(code);
      return r;
    };
    await run(['migrate', 'wrap', '--from', legacy, '--yes']);
    await run(['migrate', 'hybrid', '--to', `sqlite:${join(t.dir, 'new.db')}`, '--yes']);
    const node = await startNode(legacy);
    const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0, namespace: 'live' });
    try {
      const before = node.registry.backend.url;
      await client.register('before-cutover', process.pid, { at: 'legacy' });

      const dry = await run(['migrate', 'cutover', '--node', node.url, '--dry-run', '--json']);
      expect(dry.stdout).to.include(`switch the running node ${node.url}`);
      expect(node.registry.backend.url, 'a dry run moves no node').to.equal(before);

      const up = await run(['migrate', 'cutover', '--node', node.url, '--yes', '--accept-changes', '--json']);
      expect(JSON.parse(up.stdout).notes.join('\n')).to.match(/switched from .* to hybrid/);
      expect(node.registry.backend.url).to.match(/^hybrid:/);
      // The journal says where the node was, for a rollback (or a killed phase).
      const rec = new Migration({
        config: join(t.dir, 'registry.config.json'),
        nodeName: FIXTURE_NODE,
      }).journal.state.phases.find((p) => p.phase === 'cutover');
      expect(rec?.details?.nodes).to.deep.include({
        url: node.url,
        from: before,
        to: 'hybrid:',
        toOpts: (rec?.details?.nodes as Array<{ toOpts: unknown }>)[0]!.toOpts,
        reached: node.registry.backend.url,
        state: 'switched',
      });
      await client.register('after-cutover', process.pid, { at: 'hybrid' });
      expect((await client.lookup('before-cutover'))?.meta).to.deep.equal({ at: 'legacy' });

      await run(['migrate', 'rollback', '--yes', '--json']);
      expect(node.registry.backend.url, 'back on the legacy store').to.equal(before);
      expect((await client.lookup('after-cutover'))?.meta, 'a write made on the hybrid is kept').to.deep.equal({
        at: 'hybrid',
      });
      expect((await client.lookup('before-cutover'))?.meta).to.deep.equal({ at: 'legacy' });
      // Not a node: refused with a one-line message before the phase starts.
      const bad = await run(
        ['migrate', 'cutover', '--node', `sqlite:${join(t.dir, 'x.db')}`, '--yes', '--accept-changes'],
        2,
      );
      expect(bad.stderr.trim().split('\n')).to.have.length(1);
      expect(bad.stderr).to.match(/is not a registry node/);
      expect(new Migration({ config: join(t.dir, 'registry.config.json') }).journal.interrupted()).to.equal(undefined);
    } finally {
      await client.close();
      await node.close();
    }
  });

  it('registry node switch moves a node SQLite → SQLite through the CLI and prints the report', async () => {
    const node = await startNode(`sqlite:${join(t.dir, 'one.db')}`);
    const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    try {
      await client.register('kept', process.pid, { v: 1 });
      const to = `sqlite:${join(t.dir, 'two.db')}`;
      const r = await cli(['node', 'switch', '--to', to, '-b', node.url], { cwd: t.dir });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/caught up in the pause/);
      expect(r.stdout).to.include(to);
      expect(node.registry.backend.url).to.equal(to);
      expect((await client.lookup('kept'))?.meta).to.deep.equal({ v: 1 });
    } finally {
      await client.close();
      await node.close();
    }
  });

  it('a cutover killed after it switched a node: rollback of the interrupted phase moves the node back', async () => {
    const own = tempDir('procreg-killed-'); // its own config and journal (none in a parent dir)
    const dir = join(own.dir, 'm');
    const { path } = fixture('clean', own.dir);
    const legacy = `legacy:${path}`;
    mkdirSync(dir);
    const config = join(dir, 'registry.config.json');
    const m = () => new Migration({ config, nodeName: FIXTURE_NODE });
    const run = async (args: string[]) => {
      const r = await cli(args, { cwd: dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stderr}`).to.equal(0);
    };
    await run(['migrate', 'wrap', '--from', legacy, '--yes']);
    await run(['migrate', 'hybrid', '--to', `sqlite:${join(own.dir, 'new.db')}`, '--yes']);
    const node = await startNode(legacy);
    try {
      const before = node.registry.backend.url;
      // What a cutover killed right after its node move leaves: a running record naming the move.
      const hybrid = m().readConfig().profiles![PROFILE.hybrid]!;
      const mg = m();
      const rec = mg.journal.begin({ phase: 'cutover', from: legacy, to: PROFILE.hybrid });
      const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
      const r = await (client.backend as RemoteBackend).switchNode(hybrid.backend, hybrid.backendOpts);
      await client.close();
      rec.details = {
        nodes: [{ url: node.url, from: before, to: hybrid.backend, reached: r.to, state: 'switching' }],
      };
      mg.journal.save();
      expect(node.registry.backend.url).to.match(/^hybrid:/);
      const back = await rollback(m());
      expect(back.notes.join('\n')).to.include(`node ${node.url} switched back to ${before}`);
      expect(node.registry.backend.url).to.equal(before);
      expect(m().journal.interrupted()).to.equal(undefined);
    } finally {
      await node.close();
      own.cleanup();
    }
  });

  it('distribute --node switches the running node from SQLite to etcd (3 members); rollback moves it back with what was written there', async () => {
    const c = await startEtcdCluster({ members: 3 });
    const own = tempDir('procreg-distribute-');
    const dir = join(own.dir, 'm');
    mkdirSync(dir);
    const { path } = fixture('clean', own.dir);
    const target = `sqlite:${join(own.dir, 'new.db')}`;
    const run = async (args: string[], code = 0) => {
      const r = await cli(args, { cwd: dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).to.equal(code);
      return r;
    };
    try {
      await run(['migrate', 'wrap', '--from', `legacy:${path}`, '--yes']);
      await run(['migrate', 'hybrid', '--to', target, '--yes']);
      await run(['migrate', 'cutover', '--yes', '--accept-changes']);
      await run(['migrate', 'optimize', '--yes', '--accept-changes']);
      const node = await startNode(target);
      const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0, namespace: 'live' });
      try {
        const before = node.registry.backend.url;
        await client.register('before-distribute', process.pid, { at: 'sqlite' });
        const etcd = c.url('/procreg-distribute');
        const d = await run(['migrate', 'distribute', '--to', etcd, '--node', node.url, '--yes', '--json']);
        expect(JSON.parse(d.stdout).notes.join('\n')).to.match(/node .* switched from sqlite:.* to etcd:/);
        expect(node.registry.backend.url).to.match(/^etcd:/);
        expect((await client.lookup('before-distribute'))?.meta, 'copied into etcd').to.deep.equal({ at: 'sqlite' });
        await client.register('on-etcd', process.pid, { at: 'etcd' });

        const back = await run(['migrate', 'rollback', '--yes', '--json']);
        expect(JSON.parse(back.stdout).notes.join('\n')).to.include(`node ${node.url} switched back to ${before}`);
        expect(node.registry.backend.url, 'back on the SQLite store').to.equal(before);
        expect((await client.lookup('on-etcd'))?.meta, 'a write made on etcd is kept').to.deep.equal({ at: 'etcd' });
        expect((await client.lookup('before-distribute'))?.meta).to.deep.equal({ at: 'sqlite' });
      } finally {
        await client.close();
        await node.close();
      }
    } finally {
      await c.stop();
      own.cleanup();
    }
  });
});
