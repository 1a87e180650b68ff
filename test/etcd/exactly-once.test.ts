/**
 * Regression tests of issue 13's two etcd defects, on a real 3-member cluster:
 *
 * 1. A conditional write never decides from a cached copy: a conditional unregister right after a
 *    register through the same instance sees that register (the old per-instance `remember`/
 *    `recall` cache answered `false` from a copy read up to 1 s earlier).
 * 2. A write whose answer is lost is never retried into a wrong definite answer: answers are
 *    dropped after etcd applied the txn (or before it was sent), and the call must answer what
 *    really happened — or OutcomeUnknownError (exit 6) when that cannot be established.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { expectUnknown } from '../support/expect.js';
import { killAllSleepers, spawnSleepers, waitFor, type Sleeper } from '../support/processes.js';

type Txn = Etcd3['kv']['txn'];
interface Internals {
  client: Etcd3;
  writeStats: { ambiguous: number; applied: number; notApplied: number; unknown: number; fenced: number };
}

function internals(reg: ProcessRegistry): Internals {
  return reg.backend as unknown as Internals;
}

function lostAnswer(): Error {
  const e = new Error('14 UNAVAILABLE: request timed out (answer dropped by the test)');
  e.name = 'GRPCDeadlineExceededError';
  return e;
}

/**
 * Make the next `n`-th write txn of `reg` lose its answer: `when: 'after'` runs it first (etcd
 * applies it), `'before'` never sends it; `between` runs after the apply, before the error.
 */
function dropAnswer(reg: ProcessRegistry, when: 'after' | 'before', between?: () => Promise<void>): void {
  const kv = internals(reg).client.kv;
  const real: Txn = kv.txn.bind(kv);
  let armed = true;
  kv.txn = async (req: Parameters<Txn>[0], opts?: Parameters<Txn>[1]) => {
    const writes = (req.success ?? []).some((op) => op.request_put || op.request_delete_range);
    if (!armed || !writes) return real(req, opts);
    armed = false;
    if (when === 'after') await real(req, opts);
    await between?.();
    throw lostAnswer();
  };
}

describe('etcd: exactly-once writes and fresh conditional writes (issue 13)', function () {
  this.timeout(90_000);
  let c: EtcdCluster;
  let procs: Sleeper[];
  let n = 0;
  const open: ProcessRegistry[] = [];
  const fresh = async (opts: Record<string, unknown> = {}) => {
    const r = await ProcessRegistry.open({ backend: c.url(`/once-${n}`), cleanupInterval: 0, backendOpts: opts });
    open.push(r);
    return r;
  };

  before(async () => {
    c = await startEtcdCluster({ members: 3 });
    procs = await spawnSleepers(3);
  });
  beforeEach(() => {
    n++;
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close().catch(() => undefined)));
  });
  after(async () => {
    await killAllSleepers();
    await c?.stop();
  });
  const pid = (i: number) => procs[i]?.pid ?? 0;

  for (const consistency of ['linearizable', 'serializable'] as const) {
    it(`defect 1: a conditional unregister right after a register through the same instance removes it (${consistency})`, async () => {
      const a = await fresh({ consistency });
      const b = await fresh({ consistency });
      // A serializable read answers from the instance's own member, which may apply a write (its
      // own too: a follower forwards it, and answers before applying it) a moment later.
      const settled = async (reg: ProcessRegistry, key: string, want: number | undefined): Promise<void> => {
        if (consistency === 'serializable')
          await waitFor(async () => (await reg.lookup(key))?.pid === want, 10_000, `to see ${key} → ${want}`);
        expect((await reg.lookup(key))?.pid).to.equal(want);
      };
      await b.register('k', pid(0));
      await settled(a, 'k', pid(0)); // A has read X
      expect(await b.unregister('k')).to.equal(true);
      await a.register('k', pid(1));
      expect(await a.unregister('k', { pid: pid(1) }), 'removes Y’s own entry').to.equal(true);
      await settled(b, 'k', undefined);
      // And a stale copy never makes it remove a newer holder.
      await a.register('k2', pid(0));
      await settled(a, 'k2', pid(0));
      expect(await b.unregister('k2')).to.equal(true);
      await b.register('k2', pid(2));
      expect(await a.unregister('k2', { pid: pid(0) })).to.equal(false);
      await settled(b, 'k2', pid(2));
    });
  }

  it('defect 2: register applied, answer lost → ok (never "conflict" naming the caller)', async () => {
    const a = await fresh();
    dropAnswer(a, 'after');
    const e = await a.register('k', pid(0), { v: 1 });
    expect(e.pid).to.equal(pid(0));
    expect(internals(a).writeStats).to.include({ ambiguous: 1, applied: 1 });
    expect((await a.lookup('k'))?.meta).to.deep.equal({ v: 1 });
  });

  it('defect 2: register applied, answer lost, then displaced by a later writer → still ok, not "conflict"', async () => {
    const a = await fresh();
    const b = await fresh();
    dropAnswer(a, 'after', async () => {
      expect(await b.unregister('k')).to.equal(true);
      await b.register('k', pid(2));
    });
    const e = await a.register('k', pid(0));
    expect(e.pid, 'its register did happen, before the later writer').to.equal(pid(0));
    expect((await a.lookup('k'))?.pid).to.equal(pid(2));
  });

  it('defect 2: register never sent, answer lost → not applied, made again → ok, once', async () => {
    const a = await fresh();
    dropAnswer(a, 'before');
    await a.register('k', pid(0));
    expect(internals(a).writeStats).to.include({ ambiguous: 1, notApplied: 1, applied: 0 });
    expect((await a.lookup('k'))?.pid).to.equal(pid(0));
  });

  it('defect 2: unregister (plain and conditional) and meta set applied, answers lost → true / the new entry', async () => {
    const a = await fresh();
    await a.register('k', pid(0), { a: 1 });
    dropAnswer(a, 'after');
    const next = await a.updateMetadata('k', { b: 2 }, { merge: true });
    expect(next.meta).to.deep.equal({ a: 1, b: 2 });
    dropAnswer(a, 'after');
    expect(await a.unregister('k')).to.equal(true);
    await a.register('k', pid(1));
    dropAnswer(a, 'after');
    expect(await a.unregister('k', { pid: pid(1) })).to.equal(true);
    expect(await a.lookup('k')).to.equal(undefined);
    expect(internals(a).writeStats).to.include({ ambiguous: 3, applied: 3 });
  });

  it('defect 2: bulk register applied, answer lost → every entry ok', async () => {
    const a = await fresh();
    dropAnswer(a, 'after');
    const res = await a.bulkRegister(Array.from({ length: 5 }, (_, i) => ({ key: `b${i}`, pid: pid(0) })));
    expect(res.map((r) => r.ok)).to.deep.equal([true, true, true, true, true]);
    expect(internals(a).writeStats).to.include({ applied: 1 });
  });

  it('outcome unknown: when the history that would tell was compacted, exit 6 saying it may have been applied', async () => {
    const a = await fresh();
    await a.register('other', pid(1));
    dropAnswer(a, 'after', async () => {
      const kv = internals(a).client.kv;
      await kv.put({ key: Buffer.from(`/once-${n}-elsewhere`), value: Buffer.from('x') });
      const head = await kv.range({ key: Buffer.from('/'), count_only: true });
      await kv.compact({ revision: head.header.revision, physical: true });
    });
    const err: unknown = await a.register('k', pid(0)).catch((e: unknown) => e);
    const e = expectUnknown(err);
    expect(e.message)
      .to.match(/may have been applied/)
      .and.match(/registry lookup k/);
    // It was in fact applied, whole.
    expect((await a.lookup('k'))?.pid).to.equal(pid(0));
  });
});
