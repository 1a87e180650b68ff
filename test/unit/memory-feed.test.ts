/** The memory backend's change feed kept as parallel arrays: resumption, filters, kinds, compaction. */
import { expect } from 'chai';
import type { ChangeEvent, Registration } from '../../src/backends/contract.js';
import { createMemoryBackend } from '../../src/backends/memory.js';
import { present } from '../support/expect.js';

const ctx = { isAlive: () => true } as never;
const entry = (namespace: string, key: string, pid: number): Registration => ({
  namespace,
  key,
  pid,
  node: 'n',
  meta: { pid },
  registeredAt: 1,
  updatedAt: 1,
  pidStart: null,
});
const always = { replaceIf: () => true };

describe('memory change feed', () => {
  it('live and resumed watchers see the same puts and deletes, in order, filtered by namespace', async () => {
    const b = createMemoryBackend('', {}, ctx);
    present(b.watch, 'the memory backend has a change feed');
    present(b.bulkRegister, 'the memory backend writes in bulk');
    const live: ChangeEvent[] = [];
    const stop = await b.watch({}, (e) => live.push(e));
    await b.register(entry('a', 'k1', 1), always);
    await b.register(entry('b', 'k2', 2), always);
    await b.register(entry('a', 'k1', 3), always); // replace
    await b.unregister('a', 'k1');
    await b.bulkRegister([entry('a', 'k3', 4), entry('b', 'k4', 5)], always);
    stop();
    expect(live.map((e) => [e.revision, e.type, e.namespace, e.key, e.entry?.pid])).to.deep.equal([
      [1, 'put', 'a', 'k1', 1],
      [2, 'put', 'b', 'k2', 2],
      [3, 'put', 'a', 'k1', 3],
      [4, 'delete', 'a', 'k1', undefined],
      [5, 'put', 'a', 'k3', 4],
      [6, 'put', 'b', 'k4', 5],
    ]);
    const deleted = live[3];
    present(deleted, 'the delete event');
    expect(deleted.entry).to.equal(undefined);
    expect(!('entry' in deleted)).to.be.ok;
    const resumed: ChangeEvent[] = [];
    await b.watch({ sinceRevision: 0 }, (e) => resumed.push(e));
    expect(resumed).to.deep.equal(live);
    const onlyA: ChangeEvent[] = [];
    await b.watch({ namespace: 'a', sinceRevision: 2 }, (e) => onlyA.push(e));
    expect(onlyA.map((e) => e.revision)).to.deep.equal([3, 4, 5]);
  });

  it('a revision older than the retained feed is refused as compacted; the recent ones are kept', async () => {
    const b = createMemoryBackend('', { feedRetention: 2 }, ctx);
    present(b.watch, 'the memory backend has a change feed');
    for (let i = 1; i <= 10; i++) await b.register(entry('a', `k${i}`, i), always);
    let err: Error | undefined;
    await b.watch(
      { sinceRevision: 1 },
      () => expect.fail('no event expected'),
      (e) => (err = e),
    );
    expect(String(err)).to.match(/revision 1 is compacted/);
    const got: number[] = [];
    await b.watch({ sinceRevision: 8 }, (e) => got.push(e.revision));
    expect(got).to.deep.equal([9, 10]);
  });
});
