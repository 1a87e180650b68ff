/**
 * The conformance suite and the model test against a real 3-member etcd cluster on loopback, a
 * fresh key prefix per factory call. The suite runs with session leases (what a long-lived
 * process uses), the model test with plain keys (what one-shot CLI calls write).
 */
import { ProcessRegistry } from '../../src/registry/service.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';

describe('etcd: a 3-member cluster', function () {
  let cluster: Promise<EtcdCluster> | undefined;
  let n = 0;
  const factory = (lease: 'session' | 'none') => async () => {
    cluster ??= startEtcdCluster({ members: 3 });
    const c = await cluster;
    const registry = await ProcessRegistry.open({
      backend: c.url(`/conf-${process.pid}-${n++}`),
      backendOpts: { lease, leaseTtl: 5 },
      cleanupInterval: 0,
    });
    return { registry };
  };
  after(async () => {
    if (cluster) await (await cluster).stop();
  });
  backendSuite('etcd (3 members, session leases)', factory('session'));
  modelSuite('etcd (3 members, plain keys)', factory('none'));
});
