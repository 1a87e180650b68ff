/** verify: equal states, each kind of difference, narrowing to keys, --strict, --max-diffs, exit codes. */
import { expect } from 'chai';
import { join } from 'node:path';
import type { Registration } from '../../src/backends/contract.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { verifyStates, type State } from '../../src/migrations/verify.js';
import { copyState, type CopyCursor } from '../../src/migrations/copy.js';
import { present } from '../support/expect.js';
import { tempDir } from '../support/tmp.js';
import { cli } from './support.js';

const t = tempDir('procreg-verify-');
const regs: ProcessRegistry[] = [];

async function store(name: string): Promise<ProcessRegistry> {
  const r = await ProcessRegistry.open({
    backend: `sqlite:${join(t.dir, `${name}.db`)}`,
    nodeName: 'verify-local',
    cleanupInterval: 0,
  });
  regs.push(r);
  return r;
}
const state = (r: ProcessRegistry): State => r;
const entry = (
  namespace: string,
  key: string,
  pid: number,
  meta: Record<string, unknown> = {},
  at = 1000,
): Registration => ({
  namespace,
  key,
  pid,
  node: 'node-a',
  meta,
  registeredAt: at,
  updatedAt: at,
  pidStart: null,
});

describe('verify', () => {
  after(async () => {
    await Promise.all(regs.map((r) => r.close()));
    t.cleanup();
  });

  let a: ProcessRegistry;
  let b: ProcessRegistry;
  before(async () => {
    a = await store('a');
    b = await store('b');
    const batch: Registration[] = [];
    for (let i = 0; i < 5000; i++)
      batch.push(entry(i % 2 ? 'ns1' : 'ns2', `k${String(i).padStart(5, '0')}`, 100 + i, { i, tags: ['x', i % 3] }));
    present(a.backend.bulkRegister, 'the sqlite backend writes in bulk');
    present(b.backend.bulkRegister, 'the sqlite backend writes in bulk');
    await a.backend.bulkRegister(batch, { replaceIf: () => true });
    // B gets the same entries, with metadata keys in another order (canonical JSON makes them equal).
    await b.backend.bulkRegister(
      batch.map((e) => ({ ...e, meta: { tags: e.meta.tags, i: e.meta.i } })),
      { replaceIf: () => true },
    );
  });

  it('equal states are equivalent, with digests from the backends and no narrowing', async () => {
    const r = await verifyStates(state(a), state(b));
    expect(r.equivalent).to.equal(true);
    expect(r.totals).to.deep.equal({ onlyInA: 0, onlyInB: 0, differing: 0 });
    expect(r.namespaces.map((n) => [n.namespace, n.a, n.b, n.mismatchedBuckets, n.digestA])).to.deep.equal([
      ['ns1', 2500, 2500, 0, 'backend'],
      ['ns2', 2500, 2500, 0, 'backend'],
    ]);
  });

  it('reports only-in-A, only-in-B and differing fields, narrowed to the mismatching buckets', async () => {
    await a.backend.register(entry('ns1', 'extra-in-a', 7), { replaceIf: () => true });
    await b.backend.register(entry('ns2', 'extra-in-b', 8), { replaceIf: () => true });
    await b.backend.register(entry('ns1', 'k00001', 999, { i: 1, tags: ['x', 1] }), { replaceIf: () => true });
    await b.backend.register(entry('ns2', 'k00002', 102, { i: 2, tags: ['y'] }), { replaceIf: () => true });
    const r = await verifyStates(state(a), state(b));
    expect(r.equivalent).to.equal(false);
    expect(r.totals).to.deep.equal({ onlyInA: 1, onlyInB: 1, differing: 2 });
    expect(r.onlyInA.map((e) => e.key)).to.deep.equal(['extra-in-a']);
    expect(r.onlyInB.map((e) => e.key)).to.deep.equal(['extra-in-b']);
    expect(r.differing.find((d) => d.key === 'k00001')?.fields).to.deep.equal({ pid: [101, 999] });
    expect(r.differing.find((d) => d.key === 'k00002')?.fields).to.deep.equal({
      meta: [
        { i: 2, tags: ['x', 2] },
        { i: 2, tags: ['y'] },
      ],
    });
    for (const n of r.namespaces)
      expect(
        n.mismatchedBuckets <= 2 && n.mismatchedBuckets >= 1,
        `${n.namespace}: only the touched buckets mismatch (${n.mismatchedBuckets}/${n.buckets})`,
      ).to.be.ok;
    const capped = await verifyStates(state(a), state(b), { maxDiffs: 1 });
    expect(capped.differing.length).to.equal(1);
    expect(capped.truncated).to.equal(true);
    expect(capped.totals.differing, 'totals stay exact').to.equal(2);
    const one = await verifyStates(state(a), state(b), { namespaces: ['ns2'] });
    expect(one.totals).to.deep.equal({ onlyInA: 0, onlyInB: 1, differing: 1 });
  });

  it('--strict compares timestamps; CLI exits 0 when equivalent and 5 with a field-by-field report', async () => {
    const c = await store('c');
    const d = await store('d');
    await c.backend.register(entry('default', 'svc', 50, { r: 1 }, 1000), { replaceIf: () => true });
    await d.backend.register(entry('default', 'svc', 50, { r: 1 }, 2000), { replaceIf: () => true });
    expect((await verifyStates(state(c), state(d))).equivalent, 'timestamps ignored by default').to.equal(true);
    const strict = await verifyStates(state(c), state(d), { strict: true });
    expect(strict.differing[0]?.fields).to.deep.equal({ registeredAt: [1000, 2000], updatedAt: [1000, 2000] });
    await c.close();
    await d.close();
    const ok = await cli(['verify', `sqlite:${join(t.dir, 'c.db')}`, `sqlite:${join(t.dir, 'd.db')}`, '--json'], {
      cwd: t.dir,
    });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout || '{}').equivalent, `stdout: ${ok.stdout} stderr: ${ok.stderr}`).to.equal(true);
    const bad = await cli(['verify', `sqlite:${join(t.dir, 'c.db')}`, `sqlite:${join(t.dir, 'd.db')}`, '--strict'], {
      cwd: t.dir,
    });
    expect(bad.code, bad.stderr).to.equal(5);
    expect(bad.stdout).to.match(/differs: +default\/svc +registeredAt: 1000 ≠ 2000/);
    expect(bad.stderr).to.match(/^registry: the stores differ/);
    const j = await cli(
      ['verify', `sqlite:${join(t.dir, 'c.db')}`, `sqlite:${join(t.dir, 'd.db')}`, '--strict', '--json'],
      { cwd: t.dir },
    );
    expect(j.code).to.equal(5);
    expect(JSON.parse(j.stdout).error.report.totals.differing).to.equal(1);
  });

  it('an invalid --namespace is refused (exit 2, one line), not compared as an empty namespace', async () => {
    // Through the raw backends it read as empty on both sides: "equivalent", exit 0.
    await expect(verifyStates(state(a), state(b), { namespaces: ['bad ns'] })).to.be.rejectedWith(/invalid namespace/);
    const r = await cli(['verify', `sqlite:${join(t.dir, 'a.db')}`, `sqlite:${join(t.dir, 'b.db')}`, '-n', 'bad ns'], {
      cwd: t.dir,
    });
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/^registry: invalid namespace "bad ns": [^\n]+\n$/);
  });

  it('copy makes a target verify equal, resuming from a cursor without duplicates', async () => {
    const e = await store('e');
    let cursor: CopyCursor | undefined;
    // Stop after the first batch (as a kill would), then resume from the cursor.
    await copyState(state(a), e, {
      batch: 700,
      onBatch: (c) => {
        if (!cursor) {
          cursor = c;
          throw new Error('stop');
        }
      },
    }).catch((err) => expect(err.message).to.equal('stop'));
    expect(await e.backend.count()).to.equal(700);
    const r = await copyState(state(a), e, { batch: 700, cursor });
    expect(r.copied).to.equal(await a.backend.count());
    expect((await verifyStates(state(a), state(e))).equivalent).to.equal(true);
  });
});
