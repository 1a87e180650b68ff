/**
 * The node serves lookups from the cache its change feed keeps coherent (issue 14 §4): a write
 * through the node is seen by the next lookup, a write by another client of the same store
 * arrives through the feed, a dead holder is never served; `registry stats` shows the hit rate,
 * through the node too.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { RegistryNode } from '../../src/node/server.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { startNode, spawnServe, type ServeProcess } from '../support/node.js';
import { killAllSleepers, spawnSleeper, spawnSleepers, waitFor } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

type CacheCounters = { hits: number; misses: number; hitRate: number | null };

/** GET a key through the node: its pid, or undefined on 404. */
async function pidAt(node: RegistryNode | string, key: string): Promise<number | undefined> {
  const url = typeof node === 'string' ? node : node.url;
  const r = await fetch(`${url}/v1/registrations/default/${encodeURIComponent(key)}`);
  if (r.status === 404) return undefined;
  expect(r.status, await r.clone().text()).to.equal(200);
  return ((await r.json()) as { pid: number }).pid;
}

async function put(node: RegistryNode, key: string, pid: number): Promise<void> {
  const r = await fetch(`${node.url}/v1/registrations/default/${encodeURIComponent(key)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pid }),
  });
  expect(r.status, await r.clone().text()).to.equal(201);
}

async function del(node: RegistryNode, key: string): Promise<void> {
  const r = await fetch(`${node.url}/v1/registrations/default/${encodeURIComponent(key)}`, { method: 'DELETE' });
  expect(r.status).to.equal(200);
}

async function cacheOf(url: string): Promise<CacheCounters | undefined> {
  const s = (await (await fetch(`${url}/v1/stats`)).json()) as { optimization?: { cache?: CacheCounters } };
  return s.optimization?.cache;
}

describe('node: lookups from the feed-coherent cache', function () {
  this.timeout(180_000);
  after(() => killAllSleepers());

  describe('over etcd (a feed that sees every writer)', () => {
    let c: EtcdCluster;
    before(async () => {
      c = await startEtcdCluster({ members: 3 });
    });
    after(async () => {
      await c?.stop();
    });

    it('a write through the node is seen at once, another client’s write arrives through the feed, a killed holder reads as absent', async () => {
      const node = await startNode(c.url('/node-cache'));
      const other = await ProcessRegistry.open({ backend: c.url('/node-cache'), cleanupInterval: 0 });
      try {
        expect(node.registry.cacheLookups, 'the node caches over etcd').to.equal(true);
        const [a, b, p] = await spawnSleepers(3);
        await put(node, 'svc', a.pid);
        expect(await pidAt(node, 'svc')).to.equal(a.pid); // miss: fills the cache
        expect(await pidAt(node, 'svc')).to.equal(a.pid); // hit
        // Read-your-writes through the node: replaced, then the next lookup answers the new holder.
        await del(node, 'svc');
        expect(await pidAt(node, 'svc'), 'an acknowledged delete is seen by the next lookup').to.equal(undefined);
        await put(node, 'svc', b.pid);
        expect(await pidAt(node, 'svc'), 'an acknowledged write is seen by the next lookup').to.equal(b.pid);
        expect(await pidAt(node, 'svc')).to.equal(b.pid);
        // Another client of the same cluster changes the key: the feed brings it to the node's cache.
        await other.unregister('svc');
        await other.register('svc', p.pid);
        await waitFor(async () => (await pidAt(node, 'svc')) === p.pid, 10_000, "the other client's write");
        // The registered process dies: the cache (TTL 30 s) must not hide it.
        await p.kill();
        await waitFor(async () => (await pidAt(node, 'svc')) === undefined, 5_000, 'the dead holder to read as absent');
        const s = await cacheOf(node.url);
        expect(s, 'the node reports its cache').to.not.equal(undefined);
        expect(s!.hits, JSON.stringify(s)).to.be.at.least(2);
        expect(s!.misses, JSON.stringify(s)).to.be.at.least(1);
        expect(s!.hitRate).to.be.a('number');
      } finally {
        await other.close();
        await node.close();
      }
    });
  });

  it('over sqlite: a write by another process on the same file is seen (the node caches only with a feed that sees it)', async () => {
    const t = tempDir();
    const url = `sqlite:${join(t.dir, 'n.db')}`;
    const node = await startNode(url);
    const other = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
    try {
      const [a, b] = await spawnSleepers(2);
      await put(node, 'svc', a.pid);
      expect(await pidAt(node, 'svc')).to.equal(a.pid);
      expect(await pidAt(node, 'svc')).to.equal(a.pid);
      await other.unregister('svc');
      await other.register('svc', b.pid);
      await waitFor(async () => (await pidAt(node, 'svc')) === b.pid, 5_000, "the other process's write");
      await b.kill();
      await waitFor(async () => (await pidAt(node, 'svc')) === undefined, 5_000, 'the dead holder to read as absent');
    } finally {
      await other.close();
      await node.close();
      t.cleanup();
    }
  });

  describe('CLI', () => {
    let sb: Sandbox;
    let serve: ServeProcess | undefined;
    beforeEach(() => {
      sb = sandbox();
    });
    afterEach(async () => {
      serve?.child.kill('SIGTERM');
      if (serve) await serve.exited;
      serve = undefined;
      sb.cleanup();
    });

    it('registry stats -b http://… shows the node’s cache hits, misses and hit rate (serve --lookup-cache); without it, none', async () => {
      serve = await spawnServe(['-b', 'memory:', '--lookup-cache'], sb.env);
      const p = await spawnSleeper();
      expect(sb.run(['register', 'svc', '--pid', String(p.pid), '-b', serve.url]).code).to.equal(0);
      for (let i = 0; i < 3; i++) expect(sb.run(['lookup', 'svc', '-b', serve.url]).code).to.equal(0);
      const json = sb.run(['stats', '-b', serve.url, '--json']);
      expect(json.code, json.stderr).to.equal(0);
      const cache = json.json<{ optimization: { cache: CacheCounters } }>().optimization.cache;
      expect(cache.misses, JSON.stringify(cache)).to.be.at.least(1);
      expect(cache.hits, JSON.stringify(cache)).to.be.at.least(2);
      expect(cache.hitRate).to.equal(Math.round((cache.hits / (cache.hits + cache.misses)) * 10_000) / 10_000);
      const text = sb.run(['stats', '-b', serve.url]);
      expect(text.code, text.stderr).to.equal(0);
      expect(text.stdout).to.match(/cache hits:?\s+\d+/);
      expect(text.stdout).to.match(/cache hit rate:?\s+\d+(\.\d)?%/);
      serve.child.kill('SIGTERM');
      await serve.exited;
      serve = await spawnServe(['-b', 'memory:'], sb.env);
      expect(sb.run(['register', 'svc', '--pid', String(p.pid), '-b', serve.url]).code).to.equal(0);
      expect(sb.run(['lookup', 'svc', '-b', serve.url]).code).to.equal(0);
      expect(await cacheOf(serve.url), 'a memory node does not cache by default').to.equal(undefined);
    });
  });
});
