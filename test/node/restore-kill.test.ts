/**
 * Issue 12 item 8: `restore` through a node is all or nothing. A real client process is SIGKILLed
 * at random points of a staged restore (upload, commit) into a real HTTP node over SQLite; the
 * store then holds exactly the old state or exactly the new one, and the next command says which.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { RegistryNode } from '../../src/node/server.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { startNode } from '../support/node.js';
import { waitFor } from '../support/processes.js';
import { type DumpState, sigkill, storeState, writeState } from '../support/restore.js';

const N = 20_000;

interface Restores {
  staging: Array<{ id: string; staged: number; count: number; committing: boolean }>;
  lastCommitted: { id: string; digest: string } | null;
  lastDiscarded: { id: string; digest: string } | null;
}

describe('node: restore is all or nothing under SIGKILL of the client', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let node: RegistryNode;
  let a: DumpState;
  let b: DumpState;
  before(async () => {
    sb = sandbox();
    a = writeState(join(sb.dir, 'a.ndjson'), N, 0, 'a');
    b = writeState(join(sb.dir, 'b.ndjson'), N, N / 2, 'b');
    node = await startNode(`sqlite:${join(sb.dir, 'node.db')}`, { restoreIdleMs: 1500 });
  });
  after(async () => {
    await node?.close();
    sb?.cleanup();
  });

  // The node runs in this process: a CLI run must not block its event loop (no spawnSync).
  const cli = (args: string[]) => sb.start(args).done;

  const restores = async (): Promise<Restores> => {
    const r = await fetch(`${node.url}/v1/health`);
    return ((await r.json()) as { nodeInfo: { restores: Restores } }).nodeInfo.restores;
  };

  it('issue 12 item 8: a client killed while staging or committing leaves exactly the old or the new state, and health says which', async () => {
    const first = await cli(['restore', a.file, '--mode', 'replace', '--yes', '-b', node.url]);
    expect(first.code, first.stderr).to.equal(0);
    expect(await storeState(node.url)).to.deep.equal({ count: a.count, digest: a.digest });
    let current = a;
    const outcomes: string[] = [];
    // Kill points: after a random share of the upload (twice), then once the whole upload is staged
    // (the commit is sent or about to be: either outcome is fine, a mix is not).
    const points = [Math.random() * 0.6, 0.3 + Math.random() * 0.6, 'uploaded' as const];
    let healthChecked = false;
    for (const point of points) {
      const target = current === a ? b : a;
      const run = sb.start(['restore', target.file, '--mode', 'replace', '--yes', '-b', node.url]);
      const want = point === 'uploaded' ? N : Math.max(1, Math.floor(point * N));
      await waitFor(
        async () => {
          if (run.child.exitCode !== null) return true;
          const s = (await restores()).staging[0];
          if (s) return s.committing || s.staged >= want;
          // No stage (a client that writes the store directly): kill once the store has changed.
          const r = await fetch(`${node.url}/v1/count`);
          return ((await r.json()) as { count: number }).count !== current.count;
        },
        60_000,
        `restore progress to ${point}`,
      );
      await sigkill(run.child);
      const r = await run.done;
      // Whatever the node was doing for the killed client finishes: no stage committing.
      await waitFor(async () => !(await restores()).staging.some((s) => s.committing), 60_000, 'the commit to end');
      const state = await storeState(node.url);
      const info = await restores();
      if (state.digest === target.digest) {
        expect(state.count).to.equal(target.count);
        expect(info.lastCommitted?.digest, 'health names the restore it holds').to.equal(target.digest);
        outcomes.push(`${point}: new (exit ${r.code ?? 'killed'})`);
        current = target;
      } else {
        expect(state, `the store is exactly the old state after a kill at ${point}`).to.deep.equal({
          count: current.count,
          digest: current.digest,
        });
        expect(info.lastCommitted?.digest).to.equal(current.digest);
        // The abandoned stage is discarded, never applied, and health says so.
        await waitFor(async () => (await restores()).staging.length === 0, 10_000, 'the stage to be discarded');
        if (!healthChecked) {
          const h = await cli(['health', '--json', '-b', node.url]);
          const line = h.json<{ backends: Array<{ health: { restore?: string } }> }>().backends[0]?.health.restore;
          expect(line, h.stdout).to.match(/discarded before its commit .*nothing of it was applied/);
          healthChecked = true;
        }
        expect((await restores()).lastDiscarded?.digest).to.equal(target.digest);
        expect(await storeState(node.url)).to.deep.equal({ count: current.count, digest: current.digest });
        outcomes.push(`${point}: old`);
      }
    }
    console.log(`      kill outcomes: ${outcomes.join(', ')}`);
  });

  it('issue 12 item 8: a staged upload that lost or changed a chunk is refused at commit, nothing applied', async () => {
    const before = await storeState(node.url);
    const post = async (path: string, body?: unknown) => {
      const r = await fetch(`${node.url}/v1/restore${path}`, {
        method: 'POST',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const entry = {
      namespace: 'default',
      key: 'svc-x',
      pid: process.pid,
      node: 'h',
      meta: {},
      registeredAt: 1,
      updatedAt: 1,
    };
    // Announced 2 entries, digest of something else: the commit checks both.
    const open = await post('', { mode: 'replace', count: 2, digest: '0'.repeat(32) });
    expect(open.status).to.equal(201);
    const id = String(open.body.id);
    expect((await post(`/${id}/entries`, { offset: 0, entries: [entry] })).status).to.equal(200);
    const replay = await post(`/${id}/entries`, { offset: 0, entries: [entry] });
    expect(replay.status, 'a replayed chunk is refused').to.equal(409);
    const short = await post(`/${id}/commit`);
    expect(short.status).to.equal(400);
    expect(String(short.body.message)).to.include(`the upload of restore ${id}`).and.include('truncated');
    expect((await post(`/${id}/commit`)).status, 'the stage is gone after a failed commit').to.equal(404);
    expect(await storeState(node.url)).to.deep.equal(before);
  });
});
