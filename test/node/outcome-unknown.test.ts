/**
 * "Outcome unknown" through a registry node (issue 13): a write whose outcome cannot be known
 * reaches the remote client as OutcomeUnknownError (exit 6, `details.outcome: 'unknown'`), never as
 * a write that certainly failed:
 *
 * - raised inside the node (its etcd backend lost the answer of a txn and could not establish
 *   whether it applied): HTTP 504 `{code: 'OUTCOME_UNKNOWN', message, outcome: 'unknown'}`;
 * - the node's own answer lost (the node SIGKILLed after the request reached it): the remote
 *   backend does not retry the write and says outcome unknown.
 *
 * A request that never reached the node (connection refused) stays a plain UnreachableError.
 */
import { expect } from 'chai';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import type { RegistryNode } from '../../src/node/server.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { OutcomeUnknownError, UnreachableError } from '../../src/backends/contract.js';
import { expectUnknown, present } from '../support/expect.js';
import { spawnServe, startNode, type ServeProcess } from '../support/node.js';
import { killAllSleepers, spawnSleepers, waitFor, type Sleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const caught = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('node: outcome unknown reaches the remote client (issue 13)', function () {
  this.timeout(120_000);
  let procs: Sleeper[];
  before(async () => {
    procs = await spawnSleepers(2);
  });
  after(async () => {
    await killAllSleepers();
  });
  const pid = (i: number) => procs[i]?.pid ?? 0;

  describe('raised inside the node (etcd backend, every member SIGSTOPped mid-write)', () => {
    let c: EtcdCluster;
    let node: RegistryNode;
    let client: ProcessRegistry;
    before(async () => {
      c = await startEtcdCluster({ members: 3 });
      node = await startNode(c.url('/ou'), { backendOpts: { callTimeout: 500, retryTimeout: 1500 } });
      client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
    });
    after(async () => {
      await client?.close();
      await node?.close();
      await c?.stop();
    });

    it('answers 504 OUTCOME_UNKNOWN; the remote backend rebuilds OutcomeUnknownError (exit 6)', async () => {
      // Warm up (lease, connections): the next writes go straight to their txn.
      await client.register('warm', pid(0));
      const stopped = [0, 1, 2].map((i) => c.pid(i)).filter((p) => p !== undefined);
      expect(stopped).to.have.length(3);
      for (const p of stopped) process.kill(p, 'SIGSTOP');
      let viaClient: unknown;
      let raw: { status: number; body: Record<string, unknown> };
      try {
        viaClient = await caught(client.register('k', pid(1)));
        const res = await fetch(`${node.url}/v1/registrations/default/k2`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ pid: pid(1) }),
          signal: AbortSignal.timeout(30_000),
        });
        raw = { status: res.status, body: (await res.json()) as Record<string, unknown> };
      } finally {
        for (const p of stopped) process.kill(p, 'SIGCONT');
      }
      const e = expectUnknown(viaClient);
      expect(e.message).to.match(/registry node http:\/\/127\.0\.0\.1:\d+: .*may have been applied/);
      expect(raw.status).to.equal(504);
      expect(raw.body).to.include({ code: 'OUTCOME_UNKNOWN', outcome: 'unknown' });
      expect(raw.body.message).to.match(/outcome unknown/);
      // Applied whole or not at all: once etcd answers again, the key holds pid(1) or nothing.
      await c.waitHealthy();
      let seen: number | undefined = -1;
      await waitFor(
        async () => {
          try {
            seen = (await client.lookup('k'))?.pid;
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        'the node to answer again',
      );
      expect([undefined, pid(1)]).to.include(seen);
    });
  });

  describe('the node killed after the request reached it (a node on SQLite)', () => {
    let tmp: { dir: string; cleanup(): void };
    let node: ServeProcess | undefined;
    beforeEach(async () => {
      tmp = tempDir('procreg-ou-');
      node = await spawnServe(['--backend', `sqlite:${join(tmp.dir, 'r.db')}`]);
    });
    afterEach(async () => {
      if (node && node.child.exitCode === null && node.child.signalCode === null) {
        node.child.kill('SIGCONT');
        node.child.kill('SIGKILL');
        await node.exited;
      }
      tmp.cleanup();
    });

    /**
     * SIGSTOP the node, start `call` through `client`, wait until its request was written to a
     * connected socket (the kernel accepts and buffers it for the stopped node), SIGKILL the node.
     */
    async function killMidCall(client: ProcessRegistry, call: () => Promise<unknown>): Promise<unknown> {
      present(node);
      const n = node;
      const agent = (client.backend as unknown as { agent: { sockets: Record<string, Socket[] | undefined> } }).agent;
      const written = () => Object.values(agent.sockets).flat();
      n.child.kill('SIGSTOP');
      const pending = caught(call());
      await waitFor(
        () => written().some((s) => s !== undefined && !s.connecting && s.bytesWritten > 0),
        20_000,
        'the request written to the stopped node',
      );
      n.child.kill('SIGKILL');
      await n.exited;
      return pending;
    }

    for (const reused of [true, false]) {
      it(`a write whose answer is lost is outcome unknown, not retried (${reused ? 'kept-alive socket' : 'fresh connection'})`, async () => {
        present(node);
        const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
        try {
          if (reused) await client.lookup('k'); // a kept-alive socket to the node
          const err = await killMidCall(client, () => client.unregister('k'));
          const e = expectUnknown(err);
          expect(e.message).to.match(
            /DELETE \/v1\/registrations\/default\/k: outcome unknown: the request reached registry node/,
          );
        } finally {
          await client.close();
        }
      });
    }

    it('a read whose answer is lost, and a write to a node that is down, are plain unreachable (nothing was done)', async () => {
      present(node);
      const client = await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 });
      try {
        const read = await killMidCall(client, () => client.lookup('k'));
        expect(read).to.be.instanceOf(UnreachableError).and.not.be.instanceOf(OutcomeUnknownError);
        const write = await caught(client.register('k', pid(0)));
        expect(write).to.be.instanceOf(UnreachableError).and.not.be.instanceOf(OutcomeUnknownError);
        expect((write as UnreachableError).message).to.match(/ECONNREFUSED/);
      } finally {
        await client.close();
      }
    });
  });
});
