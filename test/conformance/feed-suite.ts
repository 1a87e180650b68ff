/**
 * The change-feed part of the conformance suite, for backends with the `watch` capability: every
 * kind of mutation is on the feed in revision order, `sinceRevision` resumes exactly after a
 * revision, and `lookupAt` names the revision a read reflects. A backend without the capability
 * must not claim it (the tests fail rather than skip when the flag and the methods disagree).
 */
import { expect } from 'chai';
import type { ChangeEvent } from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
import { present } from '../support/expect.js';
import { spawnSleepers, waitFor } from '../support/processes.js';
import { freshNamespace, type Instance, useInstance } from './suite.js';

/** Events of one namespace, collected from a watch, with a wait for a count. */
async function collect(reg: ProcessRegistry, namespace: string, sinceRevision?: number) {
  const b = reg.backend;
  present(b.watch, 'a backend with the watch capability has watch()');
  const events: ChangeEvent[] = [];
  const errors: Error[] = [];
  const stop = await b.watch(
    { namespace, sinceRevision },
    (e) => events.push(e),
    (e) => errors.push(e),
  );
  return {
    events,
    errors,
    stop,
    until: (n: number, what: string) =>
      waitFor(() => events.length >= n, 20_000, `${what} (${events.length}/${n} events)`),
  };
}

const brief = (e: ChangeEvent) => [e.type, e.key, e.entry?.pid ?? null, e.entry?.meta ?? null];

export function feedSuite(name: string, factory: () => Promise<Instance>): void {
  describe(`conformance: ${name}: change feed`, function () {
    this.timeout(60_000);
    const get = useInstance(factory);

    it('claims the watch capability with watch()', () => {
      const b = get().backend;
      expect(b.capabilities.watch).to.equal(true);
      expect(typeof b.watch).to.equal('function');
    });

    it('every kind of mutation is on the feed, in revision order', async () => {
      const reg = get();
      const namespace = freshNamespace();
      const [a, b, c] = await spawnSleepers(3);
      const w = await collect(reg, namespace);
      await reg.register('k1', a.pid, { v: 1 }, { namespace }); // put
      await reg.register('k1', a.pid, { v: 2 }, { namespace }); // replace by the same pid
      await reg.updateMetadata('k1', { w: 3 }, { namespace, merge: true }); // merge
      await reg.updateMetadata('k1', { v: 4 }, { namespace }); // replace the metadata
      await reg.bulkRegister([
        { key: 'k2', pid: b.pid, meta: {}, namespace },
        { key: 'k3', pid: c.pid, meta: {}, namespace },
      ]);
      await reg.unregister('k1', { namespace }); // delete
      await b.kill();
      expect(await reg.lookup('k2', { namespace })).to.equal(undefined); // a dead entry removed lazily
      await c.kill();
      await reg.cleanup(); // the sweep
      await w.until(9, 'the nine changes');
      w.stop();
      expect(w.errors).to.deep.equal([]);
      expect(w.events.map(brief)).to.deep.equal([
        ['put', 'k1', a.pid, { v: 1 }],
        ['put', 'k1', a.pid, { v: 2 }],
        ['put', 'k1', a.pid, { v: 2, w: 3 }],
        ['put', 'k1', a.pid, { v: 4 }],
        ['put', 'k2', b.pid, {}],
        ['put', 'k3', c.pid, {}],
        ['delete', 'k1', null, null],
        ['delete', 'k2', null, null],
        ['delete', 'k3', null, null],
      ]);
      const revs = w.events.map((e) => e.revision);
      expect(revs, 'revisions increase').to.deep.equal([...revs].sort((x, y) => x - y));
      expect(new Set(revs).size).to.equal(revs.length);
    });

    it('sinceRevision resumes exactly after a revision; currentRevision is the newest one', async () => {
      const reg = get();
      const b = reg.backend;
      const namespace = freshNamespace();
      const [a] = await spawnSleepers(1);
      // Without currentRevision (the http client), the revision of a first write seen live.
      const probe = async () => {
        const w = await collect(reg, namespace);
        await reg.register('r0', a.pid, {}, { namespace });
        await w.until(1, 'the probe');
        w.stop();
        return w.events[0]!.revision;
      };
      const from = b.currentRevision ? await b.currentRevision() : await probe();
      await reg.register('r1', a.pid, {}, { namespace });
      await reg.register('r2', a.pid, {}, { namespace });
      await reg.unregister('r1', { namespace });
      const all = await collect(reg, namespace, from);
      await all.until(3, 'the replay from before the writes');
      all.stop();
      expect(all.events.map((e) => [e.type, e.key])).to.deep.equal([
        ['put', 'r1'],
        ['put', 'r2'],
        ['delete', 'r1'],
      ]);
      const second = all.events[0];
      present(second, 'the first event');
      const rest = await collect(reg, namespace, second.revision);
      await rest.until(2, 'the replay after the first event');
      rest.stop();
      expect(rest.events.map((e) => e.revision)).to.deep.equal(all.events.slice(1).map((e) => e.revision));
      if (b.currentRevision) expect(await b.currentRevision()).to.be.at.least(all.events.at(-1)!.revision);
    });

    it('lookupAt names a revision at least that of the write it reflects', async () => {
      const reg = get();
      const b = reg.backend;
      if (!b.lookupAt) return; // optional: a cache then refuses reads racing any event of the key
      const namespace = freshNamespace();
      const [a] = await spawnSleepers(1);
      const w = await collect(reg, namespace);
      await reg.register('l1', a.pid, { n: 1 }, { namespace });
      await w.until(1, 'the put');
      w.stop();
      const at = await b.lookupAt(namespace, 'l1');
      expect(at.entry?.meta).to.deep.equal({ n: 1 });
      expect(at.revision).to.be.at.least(w.events[0]!.revision);
    });
  });
}
