/**
 * The etcd backend's extras on a single-member cluster: URL parsing, bulk registers spanning
 * several txns with index keys, digest next to the data, namespaces, clearNamespace, the key
 * layout as etcdctl shows it.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { InvalidInputError } from '../../src/backends/contract.js';
import { parseEtcdUrl } from '../../src/backends/etcd.js';
import { BucketDigester } from '../../src/registry/digest.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { present } from '../support/expect.js';

describe('etcd: extras (1 member)', function () {
  this.timeout(60_000);
  let c: EtcdCluster;
  let reg: ProcessRegistry;
  before(async () => {
    c = await startEtcdCluster({ members: 1 });
    reg = await ProcessRegistry.open({ backend: c.url('/extras'), cleanupInterval: 0 });
  });
  after(async () => {
    await reg?.close();
    await c?.stop();
  });

  it('parses etcd URLs and refuses bad ones with a clear error', async () => {
    expect(parseEtcdUrl('etcd://127.0.0.1:2379')).to.deep.equal({ endpoints: ['127.0.0.1:2379'], prefix: '/procreg' });
    expect(parseEtcdUrl('etcd://a:1,b:2/reg/x/')).to.deep.equal({ endpoints: ['a:1', 'b:2'], prefix: '/reg/x' });
    for (const bad of ['etcd://', 'etcd://host', 'etcd://h:99999', 'etcd://h:1,,h:2', 'etcd:h:1']) {
      expect(() => parseEtcdUrl(bad), bad).to.throw(InvalidInputError, /etcd:\/\/HOST:PORT/);
    }
    const err = await ProcessRegistry.open({ backend: 'etcd://nohost' }).catch((e) => e);
    expect(err instanceof InvalidInputError).to.be.ok;
    expect(err.exitCode).to.equal(2);
    const err2 = await ProcessRegistry.open({ backend: c.url('/x'), backendOpts: { lease: 'forever' } }).catch(
      (e) => e,
    );
    expect(err2 instanceof InvalidInputError).to.be.ok;
  });

  it('bulk register over several txns keeps index keys exact; digest, namespaces, clearNamespace', async () => {
    const items = Array.from({ length: 300 }, (_, i) => ({
      key: `b${String(i).padStart(3, '0')}`,
      pid: process.pid,
      namespace: 'bulk',
      meta: { tier: i % 3 === 0 ? 'gold' : 'silver', capabilities: ['x', `c${i % 5}`] },
    }));
    const res = await reg.bulkRegister(items);
    expect(res.every((r) => r.ok)).to.be.ok;
    const gold = await reg.list({ namespace: 'bulk', where: [['tier', 'gold']], limit: 1000 });
    expect(gold.items.length).to.equal(100);
    expect(gold.items.map((e) => e.key)).to.deep.equal(items.filter((_, i) => i % 3 === 0).map((e) => e.key));
    const c3 = await reg.list({
      namespace: 'bulk',
      where: [
        ['capabilities', 'c3'],
        ['tier', 'silver'],
      ],
      limit: 1000,
    });
    expect(c3.items.map((e) => e.key)).to.deep.equal(
      items.filter((_, i) => i % 5 === 3 && i % 3 !== 0).map((e) => e.key),
    );
    // Metadata update moves the entry between index values.
    await reg.updateMetadata('b001', { tier: 'gold' }, { namespace: 'bulk' });
    expect((await reg.list({ namespace: 'bulk', where: [['tier', 'gold']], limit: 1000 })).items.length).to.equal(101);
    expect(
      (await reg.list({ namespace: 'bulk', where: [['capabilities', 'c1']], limit: 1000 })).items.some(
        (e) => e.key === 'b001',
      ),
    ).to.equal(false);

    // digest where the data lives = digest of the listed entries
    const d = await reg.backend.digest!('bulk', 16);
    const local = new BucketDigester(16);
    for await (const e of reg.entries({ namespace: 'bulk' })) local.add(e);
    expect(d).to.deep.equal(local.result());

    await reg.register('solo', process.pid, {}, { namespace: 'other.ns' });
    expect(await reg.namespaces()).to.deep.equal(['bulk', 'other.ns']);
    expect(await reg.backend.clearNamespace!('bulk')).to.equal(300);
    expect(await reg.namespaces()).to.deep.equal(['other.ns']);
    const keys = spawnSync('etcdctl', ['--endpoints', c.endpoint(0), 'get', '--prefix', '/extras/', '--keys-only'], {
      encoding: 'utf8',
    })
      .stdout.split('\n')
      .filter(Boolean);
    expect(!keys.some((k) => k.includes('/bulk/')), 'no index or process key of the cleared namespace is left').to.be
      .ok;
  });

  it('the key layout is readable JSON under etcdctl', async () => {
    await reg.register('web/1', process.pid, { type: 'web', port: 8080 });
    const out = spawnSync('etcdctl', ['--endpoints', c.endpoint(0), 'get', '--prefix', '/extras/r/default/'], {
      encoding: 'utf8',
    }).stdout.split('\n');
    const [key, value] = out;
    expect(key).to.equal('/extras/r/default/web/1');
    present(value, `a value line under the key:\n${out.join('\n')}`);
    const v = JSON.parse(value);
    expect(v.pid).to.equal(process.pid);
    expect(v.meta).to.deep.equal({ type: 'web', port: 8080 });
    const idx = spawnSync(
      'etcdctl',
      ['--endpoints', c.endpoint(0), 'get', '--prefix', '/extras/i/default/type/web/', '--keys-only'],
      { encoding: 'utf8' },
    ).stdout.trim();
    expect(idx).to.equal('/extras/i/default/type/web/web/1');
  });
});
