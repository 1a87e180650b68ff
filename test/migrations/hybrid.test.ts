/** The hybrid backend: the conformance suite over legacy(primary) + sqlite(backup), and divergence reporting. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { HybridBackend } from '../../src/backends/hybrid.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture, FIXTURE_NODE } from './support.js';

describe('hybrid backend', () => {
  const t = tempDir('procreg-hybrid-');
  after(() => t.cleanup());

  it('writes both, reads primary then backup, lists the union and reports divergence in health', async () => {
    const { path } = fixture('clean', t.dir);
    const reg = await ProcessRegistry.open({
      backend: 'hybrid:',
      backendOpts: { primary: `legacy:${path}`, backup: `sqlite:${join(t.dir, 'b.db')}` },
      nodeName: FIXTURE_NODE,
      cleanupInterval: 0,
    });
    try {
      const h = reg.backend as HybridBackend;
      let health = await reg.healthCheck();
      expect(health.divergence, 'backup empty: 5 keys only in the primary').to.deep.equal({
        onlyInA: 5,
        onlyInB: 0,
        differing: 0,
      });
      expect(health.status).to.equal('degraded');
      await reg.register('new', 4242, { a: 1 }, { node: 'node-a' });
      expect((await h.backup.lookup('default', 'new'))?.pid, 'write reached the backup').to.equal(4242);
      expect((await h.primary.lookup('default', 'new'))?.pid, 'write reached the primary').to.equal(4242);
      await h.backup.register(
        { ...(await h.backup.lookup('default', 'new'))!, key: 'only-backup' },
        { replaceIf: () => true },
      );
      expect((await reg.lookup('only-backup'))?.pid, 'read falls back to the backup').to.equal(4242);
      const keys = (await reg.list({})).items.map((e) => e.key);
      expect(keys).to.deep.equal(['api', 'db', 'new', 'only-backup', 'web']);
      health = await reg.healthCheck();
      expect(health.divergence).to.deep.equal({ onlyInA: 5, onlyInB: 1, differing: 0 });
      expect(await reg.unregister('new')).to.equal(true);
      expect(await h.backup.lookup('default', 'new')).to.equal(undefined);
      expect(await h.primary.lookup('default', 'new')).to.equal(undefined);
    } finally {
      await reg.close();
    }
  });
});

describe('issue 12 item 3: migration targets must be durable and shared', function () {
  this.timeout(120_000);
  const t = tempDir('procreg-durable-');
  after(() => t.cleanup());

  const refused = (r: { code: number | null; stderr: string }, what: string) => {
    expect(r.code, `${what}: exit 2\n${r.stderr}`).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, `${what}: one line, no stack trace`).to.have.length(1);
    expect(lines[0]).to.match(/^registry: --to memory: is not a durable, shared store .*: use sqlite:PATH/);
  };

  it('refuses memory: as the hybrid, distribute and copy --to target with exit 2 and the reason', async () => {
    const { path } = fixture('clean', t.dir);
    const legacy = `legacy:${path}`;
    const ok = async (args: string[]) => {
      const r = await cli(args, { cwd: t.dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stderr}`).to.equal(0);
    };
    refused(await cli(['migrate', 'copy', '--from', legacy, '--to', 'memory:'], { cwd: t.dir }), 'copy');
    await ok(['migrate', 'wrap', '--from', legacy, '--yes', '--json']);
    refused(await cli(['migrate', 'hybrid', '--to', 'memory:', '--dry-run'], { cwd: t.dir }), 'hybrid --dry-run');
    refused(await cli(['migrate', 'hybrid', '--to', 'memory:', '--yes'], { cwd: t.dir }), 'hybrid');
    const s = JSON.parse((await cli(['migrate', 'status', '--json'], { cwd: t.dir })).stdout) as {
      phases: Array<{ phase: string; status: string }>;
    };
    const cfg = JSON.parse(readFileSync(join(t.dir, 'registry.config.json'), 'utf8')) as {
      profiles: Record<string, unknown>;
    };
    expect(cfg.profiles, 'no profile points at the refused target').not.to.have.property('migrate-hybrid');
    expect(JSON.stringify(s)).not.to.contain('memory:');
    await ok(['migrate', 'hybrid', '--to', `sqlite:${join(t.dir, 'new.db')}`, '--yes']);
    await ok(['migrate', 'cutover', '--yes', '--accept-changes']); // the legacy lookup answers meta {} from the registry table
    await ok(['migrate', 'optimize', '--yes', '--accept-changes']);
    refused(
      await cli(['migrate', 'distribute', '--to', 'memory:', '--dry-run'], { cwd: t.dir }),
      'distribute --dry-run',
    );
    refused(await cli(['migrate', 'distribute', '--to', 'memory:', '--yes'], { cwd: t.dir }), 'distribute');
  });
});
