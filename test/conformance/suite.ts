/**
 * The conformance suite: one function of a backend factory, run against every backend
 * (test/conformance/*.test.ts wire it up in a few lines each). Every test works in its own random
 * namespace of a shared instance; liveness uses real processes, spawned and killed.
 *
 * The first ten tests are the seed's own behaviours, by name.
 */
import { expect } from 'chai';
import {
  AlreadyRegisteredError,
  ClosedError,
  DeadProcessError,
  InvalidInputError,
  NotFoundError,
  type Registration,
} from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
import { present } from '../support/expect.js';
import { deadPid, killAllSleepers, spawnSleeper, spawnSleepers } from '../support/processes.js';

export interface Instance {
  registry: ProcessRegistry;
  /** Stop what the factory started (servers, clusters). */
  teardown?(): Promise<void>;
}

export interface SuiteOptions {
  /** Test names to skip, with the reason (say why: a skipped test is a gap). */
  skip?: Record<string, string>;
  /** Extra tests run with the same instance getter. */
  additionalTests?(get: () => ProcessRegistry): void;
  /** Per-test timeout in ms (default 30 s). */
  timeout?: number;
}

let nsCounter = 0;
export function freshNamespace(): string {
  return `t${process.pid}.${Date.now().toString(36)}.${(nsCounter++).toString(36)}`;
}

/** Inside a describe: one instance from `factory` for the block, closed (with its sleepers) after it. */
export function useInstance(factory: () => Promise<Instance>): () => ProcessRegistry {
  let inst: Instance;
  before(async () => {
    inst = await factory();
  });
  after(async () => {
    await killAllSleepers();
    await inst?.registry.close().catch(() => undefined);
    await inst?.teardown?.();
  });
  return () => inst.registry;
}

export function backendSuite(name: string, factory: () => Promise<Instance>, options: SuiteOptions = {}): void {
  describe(`conformance: ${name}`, function () {
    this.timeout(options.timeout ?? 60_000);
    const get = useInstance(factory);
    const test = (title: string, fn: () => Promise<void>) => {
      const reason = options.skip?.[title];
      // mocha's pending tests carry no reason: the title says it.
      if (reason) it.skip(`${title} (skipped: ${reason})`, fn);
      else it(title, fn);
    };

    // --- the seed's behaviours ------------------------------------------------------------------

    test('conflict on a live holder', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, { v: 1 }, { namespace });
      const err = await reg.register('svc', b.pid, { v: 2 }, { namespace }).catch((e) => e);
      expect(err instanceof AlreadyRegisteredError, `expected AlreadyRegisteredError, got ${err}`).to.be.ok;
      expect(err.code).to.equal('ALREADY_REGISTERED');
      expect(err.exitCode).to.equal(4);
      expect(err.holder.pid, 'the loser is told who holds the key').to.equal(a.pid);
      expect((await reg.lookup('svc', { namespace }))?.pid).to.equal(a.pid);
    });

    test('same pid re-registers with metadata replaced', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const first = await reg.register('svc', a.pid, { v: 1, keep: true }, { namespace });
      await new Promise((r) => setTimeout(r, 5));
      const second = await reg.register('svc', a.pid, { v: 2 }, { namespace });
      expect(second.meta).to.deep.equal({ v: 2 });
      const got = await reg.lookup('svc', { namespace });
      expect(got?.meta, 'metadata is replaced, not merged').to.deep.equal({ v: 2 });
      present(got, 'the re-registered entry');
      expect(got.updatedAt >= first.updatedAt).to.be.ok;
    });

    test('a list value with a repeated element registers, re-registers and lists once by it', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      // `tier` and `capabilities` are indexed by default where a backend indexes (SQLite, memory, etcd).
      await reg.register('svc', a.pid, {}, { namespace });
      await reg.register('svc', a.pid, { tier: ['x', 'x'], capabilities: ['gpu', 'gpu', 'ssd'] }, { namespace });
      await reg.updateMetadata('svc', { tier: ['x', 'y', 'x'] }, { namespace, merge: true });
      await reg.register('other', a.pid, { tier: ['x', 'x'] }, { namespace });
      for (const [field, value, keys] of [
        ['tier', 'x', ['other', 'svc']],
        ['tier', 'y', ['svc']],
        ['capabilities', 'gpu', ['svc']],
      ] as const) {
        const page = await reg.list({ namespace, where: [[field, value]] });
        expect(
          page.items.map((e) => e.key),
          `${field}=${value}`,
        ).to.deep.equal(keys);
      }
      await reg.unregister('svc', { namespace });
      expect((await reg.list({ namespace, where: [['tier', 'x']] })).items.map((e) => e.key)).to.deep.equal(['other']);
    });

    test('dead holder replaced', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, {}, { namespace });
      await a.kill();
      const e = await reg.register('svc', b.pid, { by: 'b' }, { namespace });
      expect(e.pid).to.equal(b.pid);
      expect((await reg.lookup('svc', { namespace }))?.pid).to.equal(b.pid);
    });

    test('dead pid never returned', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, {}, { namespace });
      expect((await reg.lookup('svc', { namespace }))?.pid).to.equal(a.pid);
      await a.kill();
      expect(await reg.lookup('svc', { namespace })).to.equal(undefined);
      expect((await reg.list({ namespace })).items).to.deep.equal([]);
      await expect(reg.updateMetadata('svc', { x: 1 }, { namespace })).to.be.rejectedWith(NotFoundError);
      // Registering a pid that is already dead is refused.
      await expect(reg.register('other', await deadPid(), {}, { namespace })).to.be.rejectedWith(DeadProcessError);
    });

    test('unregister idempotent', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, {}, { namespace });
      expect(await reg.unregister('svc', { namespace })).to.equal(true);
      expect(await reg.unregister('svc', { namespace })).to.equal(false);
      expect(await reg.unregister('never-there', { namespace })).to.equal(false);
      expect(await reg.lookup('svc', { namespace })).to.equal(undefined);
    });

    test('metadata must be an object', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      for (const bad of [[1, 2], 'text', 42, null, true]) {
        const err = await reg.register('svc', a.pid, bad as never, { namespace }).catch((e) => e);
        expect(err instanceof InvalidInputError, `meta ${JSON.stringify(bad)} must be refused`).to.be.ok;
        expect(err.exitCode).to.equal(2);
      }
      expect(await reg.lookup('svc', { namespace }), 'nothing written').to.equal(undefined);
      await reg.register('svc', a.pid, { ok: true }, { namespace });
      await expect(reg.updateMetadata('svc', [1] as never, { namespace })).to.be.rejectedWith(InvalidInputError);
      expect((await reg.lookup('svc', { namespace }))?.meta).to.deep.equal({ ok: true });
    });

    test('update of an absent key is not-found', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const err = await reg.updateMetadata('ghost', { a: 1 }, { namespace }).catch((e) => e);
      expect(err instanceof NotFoundError).to.be.ok;
      expect(err.exitCode).to.equal(3);
      expect(await reg.lookup('ghost', { namespace }), 'update does not create').to.equal(undefined);
    });

    test('namespace isolation', async () => {
      const reg = get();
      const ns1 = freshNamespace();
      const ns2 = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, { ns: 1 }, { namespace: ns1 });
      await reg.register('svc', b.pid, { ns: 2 }, { namespace: ns2 });
      expect((await reg.lookup('svc', { namespace: ns1 }))?.pid).to.equal(a.pid);
      expect((await reg.lookup('svc', { namespace: ns2 }))?.pid).to.equal(b.pid);
      await reg.unregister('svc', { namespace: ns1 });
      expect(await reg.lookup('svc', { namespace: ns1 })).to.equal(undefined);
      expect((await reg.lookup('svc', { namespace: ns2 }))?.pid).to.equal(b.pid);
      expect((await reg.list({ namespace: ns2 })).items.length).to.equal(1);
      expect((await reg.namespaces()).includes(ns2)).to.be.ok;
      expect(!(await reg.namespaces()).includes(ns1)).to.be.ok;
    });

    test('list returns live entries only', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b, c] = await spawnSleepers(3);
      await reg.register('a', a.pid, {}, { namespace });
      await reg.register('b', b.pid, {}, { namespace });
      await reg.register('c', c.pid, {}, { namespace });
      await b.kill();
      const keys = (await reg.list({ namespace })).items.map((e) => e.key);
      expect(keys).to.deep.equal(['a', 'c']);
    });

    test('count drops on unregister', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('a', a.pid, {}, { namespace });
      await reg.register('b', b.pid, {}, { namespace });
      expect(await reg.count({ namespace })).to.equal(2);
      await reg.unregister('a', { namespace });
      expect(await reg.count({ namespace })).to.equal(1);
      await b.kill();
      expect(await reg.count({ namespace }), 'a dead process does not count').to.equal(0);
    });

    // --- the rest of the contract ----------------------------------------------------------------

    test('pid reuse: a recorded start time that differs means a different process', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const e = await reg.register('svc', a.pid, {}, { namespace });
      if (e.pidStart == null) return; // no /proc: nothing to compare
      // The same pid with another start time is how a reused pid looks.
      await reg.register('svc2', a.pid, {}, { namespace, pidStart: e.pidStart + 1 });
      expect(await reg.lookup('svc2', { namespace }), 'the old process is dead even though the pid exists').to.equal(
        undefined,
      );
      expect((await reg.lookup('svc', { namespace }))?.pid).to.equal(a.pid);
    });

    test("other nodes' registrations are judged by their node", async () => {
      const reg = get();
      const namespace = freshNamespace();
      const pid = await deadPid();
      const e = await reg.register('remote', pid, { far: true }, { namespace, node: 'elsewhere.example' });
      expect(e.node).to.equal('elsewhere.example');
      expect((await reg.lookup('remote', { namespace }))?.pid, 'a pid of another node is not checked here').to.equal(
        pid,
      );
      await reg.cleanup();
      expect((await reg.lookup('remote', { namespace }))?.pid, 'the local sweep leaves other nodes alone').to.equal(
        pid,
      );
    });

    test('list pages by cursor, ordered by key, without duplicates', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const keys = Array.from({ length: 25 }, (_, i) => `key-${String(i).padStart(2, '0')}`).reverse();
      for (const k of keys) await reg.register(k, a.pid, { i: k }, { namespace });
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await reg.list({ namespace, after, limit: 10 });
        pages++;
        seen.push(...page.items.map((e) => e.key));
        if (!page.next) break;
        after = page.next;
      }
      expect(seen).to.deep.equal([...keys].sort());
      expect(pages).to.equal(3);
    });

    test('list filters by metadata (scalars, numbers and list elements)', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('w1', a.pid, { role: 'worker', priority: 1, capabilities: ['gpu', 'ssd'] }, { namespace });
      await reg.register('w2', a.pid, { role: 'worker', priority: 2, capabilities: ['ssd'] }, { namespace });
      await reg.register('web', a.pid, { role: 'web', priority: 1 }, { namespace });
      const keys = async (where: Array<[string, string]>) =>
        (await reg.list({ namespace, where })).items.map((e) => e.key);
      expect(await keys([['role', 'worker']])).to.deep.equal(['w1', 'w2']);
      expect(await keys([['priority', '1']])).to.deep.equal(['w1', 'web']);
      expect(await keys([['capabilities', 'gpu']])).to.deep.equal(['w1']);
      expect(
        await keys([
          ['role', 'worker'],
          ['capabilities', 'ssd'],
        ]),
      ).to.deep.equal(['w1', 'w2']);
      expect(await keys([['role', 'nobody']])).to.deep.equal([]);
    });

    test('list with a filter pages correctly', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      for (let i = 0; i < 30; i++)
        await reg.register(`k${String(i).padStart(2, '0')}`, a.pid, { even: i % 2 === 0 }, { namespace });
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await reg.list({ namespace, after, limit: 4, where: [['even', 'true']] });
        expect(page.items.length <= 4).to.be.ok;
        seen.push(...page.items.map((e) => e.key));
        if (!page.next) break;
        after = page.next;
      }
      expect(seen).to.deep.equal(Array.from({ length: 15 }, (_, i) => `k${String(i * 2).padStart(2, '0')}`));
    });

    test('updateMetadata replaces, or merge-patches (RFC 7386)', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, { a: 1, b: { c: 2, d: 3 } }, { namespace });
      const merged = await reg.updateMetadata('svc', { b: { c: null, e: 4 }, f: 5 }, { namespace, merge: true });
      expect(merged.meta).to.deep.equal({ a: 1, b: { d: 3, e: 4 }, f: 5 });
      const replaced = await reg.updateMetadata('svc', { only: true }, { namespace });
      expect(replaced.meta).to.deep.equal({ only: true });
      expect((await reg.lookup('svc', { namespace }))?.meta).to.deep.equal({ only: true });
    });

    test('invalid namespace, key, pid and oversized metadata are refused, nothing written', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const bad: Array<() => Promise<unknown>> = [
        () => reg.register('k', a.pid, {}, { namespace: '-bad' }),
        () => reg.register('k', a.pid, {}, { namespace: 'x'.repeat(65) }),
        () => reg.register('', a.pid, {}, { namespace }),
        () => reg.register('a\u0001b', a.pid, {}, { namespace }),
        () => reg.register('x'.repeat(513), a.pid, {}, { namespace }),
        () => reg.register('k', 0, {}, { namespace }),
        () => reg.register('k', -5, {}, { namespace }),
        () => reg.register('k', 1.5, {}, { namespace }),
        () => reg.register('k', a.pid, { blob: 'x'.repeat(70 * 1024) }, { namespace }),
      ];
      for (const f of bad) {
        const err: unknown = await f().catch((e: unknown) => e);
        expect(err, `expected InvalidInputError, got ${String(err)}`).to.be.instanceOf(InvalidInputError);
        expect((err as InvalidInputError).message).to.match(/invalid/);
      }
      expect((await reg.list({ namespace })).items).to.deep.equal([]);
      // 512 bytes of multi-byte UTF-8 is the limit, in bytes.
      await reg.register('é'.repeat(256), a.pid, {}, { namespace });
      await expect(reg.register('é'.repeat(257), a.pid, {}, { namespace })).to.be.rejectedWith(InvalidInputError);
    });

    test('keys with slashes, spaces, percent signs and unicode round-trip, ordered by UTF-8 bytes', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const keys = ['a/b/c', 'with space', '100%', 'ünïcødé', '日本', 'Z', 'a', '😀 emoji', '..', '?q=1&x#frag'];
      for (const k of keys) await reg.register(k, a.pid, { k }, { namespace });
      for (const k of keys) expect((await reg.lookup(k, { namespace }))?.meta).to.deep.equal({ k });
      const listed = (await reg.list({ namespace })).items.map((e) => e.key);
      expect(listed).to.deep.equal([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    });

    test('bulkRegister: per-entry results in input order; atomic is all or nothing', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('taken', a.pid, {}, { namespace });
      const res = await reg.bulkRegister([
        { key: 'one', pid: b.pid, namespace },
        { key: 'taken', pid: b.pid, namespace },
        { key: 'two', pid: b.pid, meta: [] as never, namespace },
        { key: 'three', pid: b.pid, meta: { n: 3 }, namespace },
      ]);
      expect(res.map((r) => r.ok)).to.deep.equal([true, false, false, true]);
      expect((res[1] as { holder: Registration }).holder.pid).to.equal(a.pid);
      expect((await reg.lookup('three', { namespace }))?.meta.n).to.equal(3);
      const atomic = await reg.bulkRegister(
        [
          { key: 'x1', pid: b.pid, namespace },
          { key: 'taken', pid: b.pid, namespace },
        ],
        { atomic: true },
      );
      const [, failed] = atomic;
      present(failed, 'a result for the second entry');
      expect(failed.ok).to.equal(false);
      expect(await reg.lookup('x1', { namespace }), 'atomic: nothing written when one entry fails').to.equal(undefined);
    });

    test('cleanup removes registrations of dead local processes', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('a1', a.pid, {}, { namespace });
      await reg.register('a2', a.pid, {}, { namespace });
      await reg.register('b1', b.pid, {}, { namespace });
      await a.kill();
      const r = await reg.cleanup();
      expect(r.removed >= 2, `removed ${r.removed}`).to.be.ok;
      expect(await reg.backend.count(namespace), 'the dead rows are gone from the store itself').to.equal(1);
    });

    test('via: a handle on a name', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const via = reg.via('svc', { namespace });
      expect(await via.whereis()).to.equal(undefined);
      await via.register(a.pid, { via: true });
      expect(await via.whereis()).to.equal(a.pid);
      if (reg.backend.capabilities.startTimes) {
        expect(await via.signal('SIGKILL')).to.equal(true);
      } else {
        // No start time recorded (legacy rows): a reused pid cannot be ruled out, so no signal.
        await expect(via.signal('SIGKILL')).to.be.rejectedWith(InvalidInputError, /start time was not recorded/);
        expect(await via.whereis(), 'the refusal sent nothing').to.equal(a.pid);
      }
      await a.kill();
      expect(await via.whereis()).to.equal(undefined);
    });

    test('concurrent registrations of one key: exactly one winner', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const procs = await spawnSleepers(5);
      const results = await Promise.allSettled(procs.map((p) => reg.register('race', p.pid, {}, { namespace })));
      const winners = results.filter((r) => r.status === 'fulfilled');
      expect(winners.length).to.equal(1);
      const held = await reg.lookup('race', { namespace });
      present(held, 'the winner holds the key');
      const holder = held.pid;
      for (const r of results)
        if (r.status === 'rejected') expect((r.reason as AlreadyRegisteredError).holder.pid).to.equal(holder);
    });

    test('calls after close fail with a clear error', async () => {
      const own = await factory();
      await own.registry.close();
      const err = await own.registry.lookup('x').catch((e) => e);
      expect(err instanceof ClosedError).to.be.ok;
      expect(err.message).to.match(/closed/);
      await own.teardown?.();
    });

    test('healthCheck reports counts and status', async () => {
      const reg = get();
      const h = await reg.healthCheck();
      expect(['healthy', 'degraded', 'unhealthy'].includes(h.status)).to.be.ok;
      expect(typeof h.registrations).to.equal('number');
      expect(h.alive + h.dead).to.equal(h.registrations);
      expect(Array.isArray(h.reasons)).to.be.ok;
    });

    test('capability flags agree with the methods the backend has', async () => {
      const backend = get().backend;
      const caps = backend.capabilities;
      const has = (m: keyof typeof backend) => typeof backend[m] === 'function';
      const disagree: string[] = [];
      const agree = (flag: string, flagged: boolean, present: boolean, what: string) => {
        if (flagged !== present) disagree.push(`${flag} is ${flagged} but ${what} is ${present ? '' : 'not '}there`);
      };
      agree('watch', caps.watch, has('watch'), 'watch()');
      agree('digest', caps.digest, has('digest'), 'digest()');
      agree('bulkRegister', caps.bulkRegister, has('bulkRegister'), 'bulkRegister()');
      agree('transactions', caps.transactions, has('transaction'), 'transaction()');
      agree('remote', caps.remote, has('nodeStatus') && has('switchNode'), 'nodeStatus()/switchNode()');
      if (has('offThreadDigests') && !caps.digest) disagree.push('offThreadDigests() without the digest capability');
      // synchronous: every method answers without a Promise; the others answer with one.
      const answer = backend.lookup(freshNamespace(), 'no-such-key');
      const isPromise = typeof (answer as { then?: unknown } | undefined)?.then === 'function';
      await answer;
      agree('synchronous', caps.synchronous, !isPromise, 'a non-Promise lookup answer');
      const counted = backend.count(freshNamespace());
      const countPromise = typeof (counted as { then?: unknown }).then === 'function';
      await counted;
      agree('synchronous', caps.synchronous, !countPromise, 'a non-Promise count answer');
      expect(disagree, `${backend.name}: ${disagree.join('; ')}`).to.deep.equal([]);
    });

    options.additionalTests?.(get);
  });
}
