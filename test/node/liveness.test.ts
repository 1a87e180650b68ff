/**
 * One liveness rule and safe signals (issue 12 items 5 and 13), with real processes and a real
 * node on port 0: a zombie is refused at register as lookup treats it as dead; the holder of a node
 * name records its pids' start times and judges them (the node for its own name, a client for its
 * own name through a node); a dead or reused pid is not live, is swept, and is never signalled.
 */
import { expect } from 'chai';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { DeadProcessError, NotFoundError, type Registration } from '../../src/backends/contract.js';
import { openNodeRegistry, RegistryNode } from '../../src/node/server.js';
import { procInfo, pidExists } from '../../src/registry/liveness.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';

/** A real zombie: `sh` starts a short child then execs `sleep`, which never reaps it. */
async function spawnZombie(): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [line] = (await once(parent.stdout, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  await waitFor(() => procInfo(pid)?.state === 'Z', 10_000, `pid ${pid} to be a zombie`);
  return { pid, parent };
}

function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(
      new URL(path, base),
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const NODE = 'liveness-node';

describe('liveness: zombies, recorded start times, signals checked by the owner (issue 12 items 5, 13)', function () {
  this.timeout(120_000);
  let node: RegistryNode;
  let sb: Sandbox;
  const parents: ChildProcess[] = [];
  const clients: ProcessRegistry[] = [];
  const client = async (nodeName: string) => {
    const c = await ProcessRegistry.open({ backend: node.url, nodeName, cleanupInterval: 0 });
    clients.push(c);
    return c;
  };
  // Asynchronous: the node runs in this process and must answer while the CLI waits.
  const cli = (args: string[], nodeName: string) => sb.start([...args, '-b', node.url, '--node-name', nodeName]).done;
  /** Write an entry straight into the node's store, as an older client or a reused pid leaves it. */
  const plant = async (e: Registration) => {
    const r = await node.registry.backend.register(e, { replaceIf: () => true });
    expect(r.ok).to.equal(true);
  };

  before(async () => {
    const registry = await openNodeRegistry({ backend: 'memory:', nodeName: NODE, cleanupInterval: 0 });
    node = await RegistryNode.start({ registry, port: 0, logLevel: 'silent' });
    sb = sandbox();
  });
  after(async () => {
    for (const c of clients) await c.close();
    await node.close();
    for (const p of parents) p.kill('SIGKILL');
    await killAllSleepers();
    sb.cleanup();
  });

  it('item 5: register refuses a zombie pid (library, bulk, through a node, CLI), as lookup treats it as dead', async () => {
    const z = await spawnZombie();
    parents.push(z.parent);
    expect(pidExists(z.pid), 'a zombie still has its pid').to.equal(true);
    const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    try {
      await expect(reg.register('z', z.pid)).to.be.rejectedWith(DeadProcessError);
      const [r] = await reg.bulkRegister([{ key: 'z', pid: z.pid }]);
      expect(r?.ok).to.equal(false);
      expect(await reg.lookup('z'), 'nothing was written').to.equal(undefined);
    } finally {
      await reg.close();
    }
    const same = await client(NODE);
    await expect(same.register('z', z.pid), 'through the node, node name the node’s').to.be.rejectedWith(
      DeadProcessError,
    );
    const other = await client('client-b');
    await expect(other.register('z', z.pid), 'through the node, the client’s own node name').to.be.rejectedWith(
      DeadProcessError,
    );
    const c = sb.run(['register', 'z', '--pid', String(z.pid), '-b', `sqlite:${sb.dir}/z.db`]);
    expect(c.code, c.stderr).to.equal(2);
    expect(c.stderr).to.match(new RegExp(`^registry: pid ${z.pid} is not a running process`));
  });

  it("item 13: a client with another node name records its pids' start times and judges them through the node", async () => {
    const b = await client('client-b');
    const p = await spawnSleeper();
    const e = await b.register('svc', p.pid);
    expect(e.node).to.equal('client-b');
    expect(e.pidStart, 'the start time is recorded by the client on its own host').to.equal(procInfo(p.pid)?.start);
    // A reused pid looks like a live pid with another start time.
    const q = await spawnSleeper();
    const start = procInfo(q.pid)!.start;
    await b.register('reused', q.pid, {}, { pidStart: start - 5 });
    expect(await b.lookup('reused'), 'a reused pid is not the registered process').to.equal(undefined);
    expect(await node.registry.backend.lookup('default', 'reused'), 'the dead entry was removed').to.equal(undefined);
    // A dead process: not live for its owner, and its sweep removes it from the node.
    await p.kill();
    const r = await spawnSleeper();
    await b.register('gone', r.pid);
    await r.kill();
    expect(await b.lookup('svc')).to.equal(undefined);
    expect(await node.registry.backend.lookup('default', 'gone'), 'still stored before the sweep').to.not.equal(
      undefined,
    );
    const sweep = await b.cleanup();
    expect(sweep.removed).to.be.at.least(1);
    expect(await node.registry.backend.lookup('default', 'gone'), 'swept by its owner').to.equal(undefined);
    await q.kill();
  });

  it('item 13: a reused pid is never signalled, whichever node name the client uses (CLI through a node)', async () => {
    const victim = await spawnSleeper();
    const start = procInfo(victim.pid)!.start;
    const now = Date.now();
    const entry = (key: string, node: string, pidStart: number | null, registeredAt = now): Registration => ({
      namespace: 'default',
      key,
      pid: victim.pid,
      node,
      meta: {},
      registeredAt,
      updatedAt: registeredAt,
      pidStart,
    });
    // The case: registered by a client of another node name with no start time, an hour ago;
    // the pid now belongs to a process started since.
    await plant(entry('old', 'client-b', null, now - 3_600_000));
    let r = await cli(['signal', 'old', 'KILL'], 'client-b');
    expect(r.code, r.stderr).to.equal(3);
    expect(pidExists(victim.pid), 'the unrelated process lives').to.equal(true);
    // A recorded start time that differs, on the client's node name and on the node's.
    for (const [key, owner] of [
      ['b-reused', 'client-b'],
      ['n-reused', NODE],
    ] as const) {
      await plant(entry(key, owner, start + 3));
      r = await cli(['signal', key, 'KILL'], owner);
      expect(r.code, `${key}: ${r.stderr}`).to.equal(3);
      expect(r.stderr).to.match(/no live registration/);
      expect(pidExists(victim.pid), `${key}: the unrelated process lives`).to.equal(true);
    }
    // Another host's entry is not signalled from here, even when the pid looks right.
    await plant(entry('b-live', 'client-b', start));
    r = await cli(['signal', 'b-live', 'KILL'], 'client-c');
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/on node client-b/);
    expect(pidExists(victim.pid)).to.equal(true);
    // The node's own entry is checked and signalled by the node; the client's own by the client.
    await plant(entry('n-live', NODE, start));
    const sent = await post(node.url, '/v1/registrations/default/n-live/signal', { signal: 0 });
    expect(sent.status, JSON.stringify(sent.json)).to.equal(200);
    expect(sent.json).to.include({ key: 'n-live', pid: victim.pid, node: NODE });
    const refused = await post(node.url, '/v1/registrations/default/b-live/signal', { signal: 'TERM' });
    expect(refused.status).to.equal(400);
    expect(refused.json.holder?.node, 'not the node’s to signal: the holder comes back').to.equal('client-b');
    r = await cli(['signal', 'b-live', 'KILL'], 'client-b');
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(() => !pidExists(victim.pid), 10_000, 'the registered process to die');
    await victim.kill();
  });

  it('item 13: the node signals its own live entries itself (library via().signal and CLI)', async () => {
    const p = await spawnSleeper();
    const same = await client(NODE);
    await same.register('mine', p.pid);
    expect((await node.registry.lookup('mine'))?.pidStart, 'recorded').to.equal(procInfo(p.pid)?.start);
    const r = await cli(['signal', 'mine', 'KILL', '--json'], NODE);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<{ pid: number }>().pid).to.equal(p.pid);
    await waitFor(() => !pidExists(p.pid), 10_000, 'the process to die');
    await p.kill();
    expect(await same.via('mine').signal('SIGTERM'), 'dead: nothing to signal').to.equal(false);
    await expect(same.signal('mine')).to.be.rejectedWith(NotFoundError);
  });
});
