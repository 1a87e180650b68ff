/**
 * The conformance suite: one function of a backend factory, run against every backend
 * (test/conformance/*.test.ts wire it up in a few lines each). Every test works in its own random
 * namespace of a shared instance; liveness uses real processes, spawned and killed.
 *
 * The first ten tests are the seed's own behaviours, by name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AlreadyRegisteredError,
  ClosedError,
  DeadProcessError,
  InvalidInputError,
  NotFoundError,
  type Registration,
} from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
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
  describe(`conformance: ${name}`, { timeout: options.timeout ?? 60_000 }, () => {
    const get = useInstance(factory);
    const test = (title: string, fn: () => Promise<void>) => {
      const reason = options.skip?.[title];
      if (reason) it(title, { skip: reason }, fn);
      else it(title, fn);
    };

    // --- the seed's behaviours ------------------------------------------------------------------

    test('conflict on a live holder', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, { v: 1 }, { namespace });
      const err = await reg.register('svc', b.pid, { v: 2 }, { namespace }).catch((e) => e);
      assert.ok(err instanceof AlreadyRegisteredError, `expected AlreadyRegisteredError, got ${err}`);
      assert.equal(err.code, 'ALREADY_REGISTERED');
      assert.equal(err.exitCode, 4);
      assert.equal(err.holder.pid, a.pid, 'the loser is told who holds the key');
      assert.equal((await reg.lookup('svc', { namespace }))?.pid, a.pid);
    });

    test('same pid re-registers with metadata replaced', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const first = await reg.register('svc', a.pid, { v: 1, keep: true }, { namespace });
      await new Promise((r) => setTimeout(r, 5));
      const second = await reg.register('svc', a.pid, { v: 2 }, { namespace });
      assert.deepEqual(second.meta, { v: 2 });
      const got = await reg.lookup('svc', { namespace });
      assert.deepEqual(got?.meta, { v: 2 }, 'metadata is replaced, not merged');
      assert.ok(got!.updatedAt >= first.updatedAt);
    });

    test('dead holder replaced', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, {}, { namespace });
      await a.kill();
      const e = await reg.register('svc', b.pid, { by: 'b' }, { namespace });
      assert.equal(e.pid, b.pid);
      assert.equal((await reg.lookup('svc', { namespace }))?.pid, b.pid);
    });

    test('dead pid never returned', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, {}, { namespace });
      assert.equal((await reg.lookup('svc', { namespace }))?.pid, a.pid);
      await a.kill();
      assert.equal(await reg.lookup('svc', { namespace }), undefined);
      assert.deepEqual((await reg.list({ namespace })).items, []);
      await assert.rejects(reg.updateMetadata('svc', { x: 1 }, { namespace }), NotFoundError);
      // Registering a pid that is already dead is refused.
      await assert.rejects(reg.register('other', await deadPid(), {}, { namespace }), DeadProcessError);
    });

    test('unregister idempotent', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, {}, { namespace });
      assert.equal(await reg.unregister('svc', { namespace }), true);
      assert.equal(await reg.unregister('svc', { namespace }), false);
      assert.equal(await reg.unregister('never-there', { namespace }), false);
      assert.equal(await reg.lookup('svc', { namespace }), undefined);
    });

    test('metadata must be an object', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      for (const bad of [[1, 2], 'text', 42, null, true]) {
        const err = await reg.register('svc', a.pid, bad as never, { namespace }).catch((e) => e);
        assert.ok(err instanceof InvalidInputError, `meta ${JSON.stringify(bad)} must be refused`);
        assert.equal(err.exitCode, 2);
      }
      assert.equal(await reg.lookup('svc', { namespace }), undefined, 'nothing written');
      await reg.register('svc', a.pid, { ok: true }, { namespace });
      await assert.rejects(reg.updateMetadata('svc', [1] as never, { namespace }), InvalidInputError);
      assert.deepEqual((await reg.lookup('svc', { namespace }))?.meta, { ok: true });
    });

    test('update of an absent key is not-found', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const err = await reg.updateMetadata('ghost', { a: 1 }, { namespace }).catch((e) => e);
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.exitCode, 3);
      assert.equal(await reg.lookup('ghost', { namespace }), undefined, 'update does not create');
    });

    test('namespace isolation', async () => {
      const reg = get();
      const ns1 = freshNamespace();
      const ns2 = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('svc', a.pid, { ns: 1 }, { namespace: ns1 });
      await reg.register('svc', b.pid, { ns: 2 }, { namespace: ns2 });
      assert.equal((await reg.lookup('svc', { namespace: ns1 }))?.pid, a.pid);
      assert.equal((await reg.lookup('svc', { namespace: ns2 }))?.pid, b.pid);
      await reg.unregister('svc', { namespace: ns1 });
      assert.equal(await reg.lookup('svc', { namespace: ns1 }), undefined);
      assert.equal((await reg.lookup('svc', { namespace: ns2 }))?.pid, b.pid);
      assert.equal((await reg.list({ namespace: ns2 })).items.length, 1);
      assert.ok((await reg.namespaces()).includes(ns2));
      assert.ok(!(await reg.namespaces()).includes(ns1));
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
      assert.deepEqual(keys, ['a', 'c']);
    });

    test('count drops on unregister', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b] = await spawnSleepers(2);
      await reg.register('a', a.pid, {}, { namespace });
      await reg.register('b', b.pid, {}, { namespace });
      assert.equal(await reg.count({ namespace }), 2);
      await reg.unregister('a', { namespace });
      assert.equal(await reg.count({ namespace }), 1);
      await b.kill();
      assert.equal(await reg.count({ namespace }), 0, 'a dead process does not count');
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
      assert.equal(await reg.lookup('svc2', { namespace }), undefined, 'the old process is dead even though the pid exists');
      assert.equal((await reg.lookup('svc', { namespace }))?.pid, a.pid);
    });

    test("other nodes' registrations are judged by their node", async () => {
      const reg = get();
      const namespace = freshNamespace();
      const pid = await deadPid();
      const e = await reg.register('remote', pid, { far: true }, { namespace, node: 'elsewhere.example' });
      assert.equal(e.node, 'elsewhere.example');
      assert.equal((await reg.lookup('remote', { namespace }))?.pid, pid, 'a pid of another node is not checked here');
      await reg.cleanup();
      assert.equal((await reg.lookup('remote', { namespace }))?.pid, pid, 'the local sweep leaves other nodes alone');
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
      assert.deepEqual(seen, [...keys].sort());
      assert.equal(pages, 3);
    });

    test('list filters by metadata (scalars, numbers and list elements)', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('w1', a.pid, { role: 'worker', priority: 1, capabilities: ['gpu', 'ssd'] }, { namespace });
      await reg.register('w2', a.pid, { role: 'worker', priority: 2, capabilities: ['ssd'] }, { namespace });
      await reg.register('web', a.pid, { role: 'web', priority: 1 }, { namespace });
      const keys = async (where: Array<[string, string]>) => (await reg.list({ namespace, where })).items.map((e) => e.key);
      assert.deepEqual(await keys([['role', 'worker']]), ['w1', 'w2']);
      assert.deepEqual(await keys([['priority', '1']]), ['w1', 'web']);
      assert.deepEqual(await keys([['capabilities', 'gpu']]), ['w1']);
      assert.deepEqual(await keys([['role', 'worker'], ['capabilities', 'ssd']]), ['w1', 'w2']);
      assert.deepEqual(await keys([['role', 'nobody']]), []);
    });

    test('list with a filter pages correctly', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      for (let i = 0; i < 30; i++) await reg.register(`k${String(i).padStart(2, '0')}`, a.pid, { even: i % 2 === 0 }, { namespace });
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await reg.list({ namespace, after, limit: 4, where: [['even', 'true']] });
        assert.ok(page.items.length <= 4);
        seen.push(...page.items.map((e) => e.key));
        if (!page.next) break;
        after = page.next;
      }
      assert.deepEqual(seen, Array.from({ length: 15 }, (_, i) => `k${String(i * 2).padStart(2, '0')}`));
    });

    test('updateMetadata replaces, or merge-patches (RFC 7386)', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      await reg.register('svc', a.pid, { a: 1, b: { c: 2, d: 3 } }, { namespace });
      const merged = await reg.updateMetadata('svc', { b: { c: null, e: 4 }, f: 5 }, { namespace, merge: true });
      assert.deepEqual(merged.meta, { a: 1, b: { d: 3, e: 4 }, f: 5 });
      const replaced = await reg.updateMetadata('svc', { only: true }, { namespace });
      assert.deepEqual(replaced.meta, { only: true });
      assert.deepEqual((await reg.lookup('svc', { namespace }))?.meta, { only: true });
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
        const err = await f().catch((e) => e);
        assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${err}`);
        assert.match(err.message, /invalid/);
      }
      assert.deepEqual((await reg.list({ namespace })).items, []);
      // 512 bytes of multi-byte UTF-8 is the limit, in bytes.
      await reg.register('é'.repeat(256), a.pid, {}, { namespace });
      await assert.rejects(reg.register('é'.repeat(257), a.pid, {}, { namespace }), InvalidInputError);
    });

    test('keys with slashes, spaces, percent signs and unicode round-trip, ordered by UTF-8 bytes', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const keys = ['a/b/c', 'with space', '100%', 'ünïcødé', '日本', 'Z', 'a', '😀 emoji', '..', '?q=1&x#frag'];
      for (const k of keys) await reg.register(k, a.pid, { k }, { namespace });
      for (const k of keys) assert.deepEqual((await reg.lookup(k, { namespace }))?.meta, { k });
      const listed = (await reg.list({ namespace })).items.map((e) => e.key);
      assert.deepEqual(listed, [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
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
      assert.deepEqual(res.map((r) => r.ok), [true, false, false, true]);
      assert.equal((res[1] as { holder: Registration }).holder.pid, a.pid);
      assert.equal((await reg.lookup('three', { namespace }))?.meta.n, 3);
      const atomic = await reg.bulkRegister(
        [
          { key: 'x1', pid: b.pid, namespace },
          { key: 'taken', pid: b.pid, namespace },
        ],
        { atomic: true },
      );
      assert.equal(atomic[1].ok, false);
      assert.equal(await reg.lookup('x1', { namespace }), undefined, 'atomic: nothing written when one entry fails');
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
      assert.ok(r.removed >= 2, `removed ${r.removed}`);
      assert.equal(await reg.backend.count(namespace), 1, 'the dead rows are gone from the store itself');
    });

    test('via: a handle on a name', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const a = await spawnSleeper();
      const via = reg.via('svc', { namespace });
      assert.equal(await via.whereis(), undefined);
      await via.register(a.pid, { via: true });
      assert.equal(await via.whereis(), a.pid);
      assert.equal(await via.signal('SIGKILL'), true);
      await a.kill();
      assert.equal(await via.whereis(), undefined);
    });

    test('concurrent registrations of one key: exactly one winner', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const procs = await spawnSleepers(5);
      const results = await Promise.allSettled(procs.map((p) => reg.register('race', p.pid, {}, { namespace })));
      const winners = results.filter((r) => r.status === 'fulfilled');
      assert.equal(winners.length, 1);
      const holder = (await reg.lookup('race', { namespace }))!.pid;
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as AlreadyRegisteredError).holder.pid, holder);
    });

    test('calls after close fail with a clear error', async () => {
      const own = await factory();
      await own.registry.close();
      const err = await own.registry.lookup('x').catch((e) => e);
      assert.ok(err instanceof ClosedError);
      assert.match(err.message, /closed/);
      await own.teardown?.();
    });

    test('healthCheck reports counts and status', async () => {
      const reg = get();
      const h = await reg.healthCheck();
      assert.ok(['healthy', 'degraded', 'unhealthy'].includes(h.status));
      assert.equal(typeof h.registrations, 'number');
      assert.equal(h.alive + h.dead, h.registrations);
      assert.ok(Array.isArray(h.reasons));
    });

    options.additionalTests?.(get);
  });
}
