/**
 * `importEntries` (issue 14 §2) on every backend: memory, SQLite, through a real node (in-process,
 * port 0) and on a real 3-member etcd cluster. The same scenarios on each: NDJSON and CSV, a bad
 * line with and without --atomic / --skip-invalid, a key held by a live process. The store is read
 * back after every failure: exactly the lines before the bad one, or nothing.
 */
import { expect } from 'chai';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { importEntries, ImportStoppedError, type ImportOptions } from '../../src/registry/import.js';
import type { RegistryNode } from '../../src/node/server.js';
import { startNode } from '../support/node.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { tempDir, uniqueKey } from '../support/tmp.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';

/** NDJSON lines of `n` entries keyed k0…, of node "other" (judged alive: not this node's pid). */
function ndjson(n: number, tag = 'k'): string[] {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({ key: `${tag}${i}`, pid: 1000 + i, node: 'other', meta: { i, role: 'w' } }),
  );
}

const input = (lines: string[]) => Readable.from([`${lines.join('\n')}\n`]);

async function keysOf(reg: ProcessRegistry, namespace: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of reg.entries({ namespace })) out.push(e.key);
  return out.sort();
}

function stopped(err: unknown): ImportStoppedError {
  expect(err, String(err)).to.be.instanceOf(ImportStoppedError);
  return err as ImportStoppedError;
}

async function run(reg: ProcessRegistry, lines: string[], opts: ImportOptions & { namespace: string }) {
  return importEntries(reg, '-', { label: 'input', input: input(lines), ...opts });
}

function scenarios(name: string, open: () => Promise<ProcessRegistry>, big: number) {
  describe(`registry import on ${name}`, function () {
    this.timeout(240_000);
    let reg: ProcessRegistry;
    before(async () => {
      reg = await open();
    });
    after(async () => {
      await reg?.close();
    });

    it('NDJSON: every line registered, in order, with its namespace, node and metadata', async () => {
      const ns = uniqueKey('nd');
      const r = await run(reg, ndjson(big), { namespace: ns, batchSize: 97 });
      expect(r).to.include({ lines: big, written: big, mode: 'stop-at-first', method: 'batches' });
      expect(r.skipped).to.deep.equal([]);
      expect(await keysOf(reg, ns)).to.deep.equal(Array.from({ length: big }, (_, i) => `k${i}`).sort());
      const e = await reg.lookup('k3', { namespace: ns });
      expect(e).to.include({ pid: 1003, node: 'other' });
      expect(e?.meta).to.deep.equal({ i: 3, role: 'w' });
    });

    it('CSV: key,pid,node,namespace,meta.* columns, typed metadata, header row', async () => {
      const ns = uniqueKey('csv');
      const text = `key,pid,node,meta.port,meta.zone,namespace\na,11,h1,8080,z1,\n"b,2",12,h2,,z2,${ns}-x\n`;
      const r = await importEntries(reg, '-', { format: 'csv', input: Readable.from([text]), namespace: ns });
      expect(r).to.include({ lines: 2, written: 2 });
      expect((await reg.lookup('a', { namespace: ns }))?.meta).to.deep.equal({ port: 8080, zone: 'z1' });
      expect(await reg.lookup('b,2', { namespace: `${ns}-x` })).to.include({ pid: 12, node: 'h2' });
    });

    it('a bad line stops the import: exactly the lines before it are written, and the error says so', async () => {
      const ns = uniqueKey('stop');
      const lines = ndjson(big);
      const at = Math.floor(big * 0.7);
      lines[at] = '{"key":"bad","pid":-4,"node":"other"}';
      const err = stopped(await run(reg, lines, { namespace: ns, batchSize: 16 }).catch((e) => e));
      expect(err.code).to.equal('INVALID_INPUT');
      expect(err.exitCode).to.equal(2);
      expect(err.problem.line).to.equal(at + 1);
      expect(err.message)
        .to.include(`input line ${at + 1}: invalid pid -4`)
        .and.include(`the ${at} entries before it`);
      expect(err.written).to.equal(at);
      expect(await keysOf(reg, ns)).to.deep.equal(Array.from({ length: at }, (_, i) => `k${i}`).sort());
    });

    it('an unparsable line stops it the same way (mid-batch: the batch before it is written)', async () => {
      const ns = uniqueKey('json');
      const lines = ndjson(10);
      lines[4] = '{"key": oops';
      const err = stopped(await run(reg, lines, { namespace: ns }).catch((e) => e));
      expect(err.problem.line).to.equal(5);
      expect(err.message).to.include('not valid JSON');
      expect(await keysOf(reg, ns)).to.have.length(4);
    });

    it('--atomic: a bad line anywhere writes nothing (exit 2)', async () => {
      const ns = uniqueKey('atomic-bad');
      const lines = ndjson(big);
      lines[big - 1] = '{"key":"x","pid":1,"node":"other","metadata":{}}';
      const err = stopped(await run(reg, lines, { namespace: ns, atomic: true }).catch((e) => e));
      expect(err.exitCode).to.equal(2);
      expect(err.problem.line).to.equal(big);
      expect(err.message).to.include('unknown field "metadata"').and.include('nothing was written');
      expect(await keysOf(reg, ns)).to.deep.equal([]);
    });

    it('--atomic: a clean file is written whole', async () => {
      const ns = uniqueKey('atomic-ok');
      const r = await run(reg, ndjson(big), { namespace: ns, atomic: true });
      expect(r).to.include({ mode: 'atomic', written: big, lines: big });
      expect(await keysOf(reg, ns)).to.have.length(big);
    });

    it('--skip-invalid: the other lines are written, the skipped ones listed with line and reason', async () => {
      const ns = uniqueKey('skip');
      const lines = ndjson(big);
      lines[1] = 'not json';
      lines[big - 2] = '{"key":"","pid":5,"node":"other"}';
      const r = await run(reg, lines, { namespace: ns, skipInvalid: true, batchSize: 50 });
      expect(r.written).to.equal(big - 2);
      expect(r.skipped.map((s) => [s.line, s.code])).to.deep.equal([
        [2, 'INVALID_INPUT'],
        [big - 1, 'INVALID_INPUT'],
      ]);
      expect(r.skipped[1]!.reason).to.include('invalid key');
      expect(await keysOf(reg, ns)).to.have.length(big - 2);
    });

    it("a key held by another live process is refused like register's (exit 4), with --atomic nothing written", async () => {
      const ns = uniqueKey('held');
      await reg.register('k2', 4242, {}, { namespace: ns, node: 'elsewhere' });
      const err = stopped(await run(reg, ndjson(6), { namespace: ns }).catch((e) => e));
      expect(err.exitCode).to.equal(4);
      expect(err.problem).to.include({ line: 3, code: 'ALREADY_REGISTERED' });
      expect(err.problem.holder).to.include({ pid: 4242, node: 'elsewhere' });
      expect(await keysOf(reg, ns)).to.deep.equal(['k0', 'k1', 'k2']);
      expect((await reg.lookup('k2', { namespace: ns }))?.pid).to.equal(4242);

      const ns2 = uniqueKey('held-atomic');
      await reg.register('k5', 4242, {}, { namespace: ns2, node: 'elsewhere' });
      const err2 = stopped(await run(reg, ndjson(8), { namespace: ns2, atomic: true }).catch((e) => e));
      expect(err2.exitCode).to.equal(4);
      expect(err2.problem.line).to.equal(6);
      expect(await keysOf(reg, ns2)).to.deep.equal(['k5']);

      // The same process again replaces (register's rule), and --skip-invalid lists the held key.
      const ns3 = uniqueKey('held-skip');
      await reg.register('k1', 1001, { old: true }, { namespace: ns3, node: 'other' });
      await reg.register('k4', 7, {}, { namespace: ns3, node: 'elsewhere' });
      const r = await run(reg, ndjson(6), { namespace: ns3, skipInvalid: true });
      expect(r.written).to.equal(5);
      expect(r.skipped.map((s) => [s.line, s.code])).to.deep.equal([[5, 'ALREADY_REGISTERED']]);
      expect((await reg.lookup('k1', { namespace: ns3 }))?.meta).to.deep.equal({ i: 1, role: 'w' });
    });

    it('a dump (with its header) is refused with a pointer to restore', async () => {
      const lines = ['{"procreg":"dump","version":1,"count":0,"digest":"0","namespaces":[]}'];
      const err = await run(reg, lines, { namespace: 'default' }).catch((e) => e);
      expect(err.code).to.equal('INVALID_INPUT');
      expect(err.message).to.include('registry restore');
    });
  });
}

const tmp = tempDir('procreg-import-');
after(async () => {
  await killAllSleepers();
  tmp.cleanup();
});

scenarios('memory', () => ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 }), 300);
scenarios(
  'sqlite',
  () => ProcessRegistry.open({ backend: `sqlite:${join(tmp.dir, 'a.db')}`, cleanupInterval: 0 }),
  300,
);

let node: RegistryNode | undefined;
scenarios(
  'a node (sqlite behind it)',
  async () => {
    node = await startNode(`sqlite:${join(tmp.dir, 'node.db')}`);
    return ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
  },
  300,
);
after(async () => node?.close());

let cluster: EtcdCluster | undefined;
scenarios(
  'etcd (3 members)',
  async () => {
    cluster = await startEtcdCluster({ members: 3 });
    return ProcessRegistry.open({ backend: cluster.url('/imp'), cleanupInterval: 0 });
  },
  120,
);
after(async () => cluster?.stop());

describe('registry import: local pids', () => {
  it("a local pid that is not running is a bad line (register's check), a live one is written", async () => {
    const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    try {
      const p = await spawnSleeper();
      const lines = [JSON.stringify({ key: 'live', pid: p.pid }), JSON.stringify({ key: 'dead', pid: 0x7ffffff0 })];
      const r = await run(reg, lines, { namespace: 'default', skipInvalid: true });
      expect(r.written).to.equal(1);
      expect(r.skipped[0]).to.include({ line: 2, code: 'DEAD_PROCESS' });
      expect((await reg.lookup('live'))?.pidStart).to.be.a('number');
    } finally {
      await reg.close();
    }
  });
});
