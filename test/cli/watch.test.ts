/** `registry watch` against a real node: events in order, NDJSON, --since replay, Ctrl-C stop. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { spawnServe, type ServeProcess } from '../support/node.js';

let sb: Sandbox;
// The node runs in its own process: the CLI calls below are synchronous spawns.
let node: ServeProcess;
let url: string;
before(async () => {
  sb = sandbox();
  node = await spawnServe(['-b', 'memory:']);
  url = node.url;
});
after(async () => {
  await killAllSleepers();
  node.child.kill('SIGTERM');
  await node.exited;
  sb.cleanup();
});

describe('registry watch', () => {
  it('streams puts and deletes as NDJSON, and replays from a revision', async () => {
    const p = await spawnSleeper();
    const w = sb.start(['watch', '-b', url, '-n', 'w', '--json', '--timeout', '60']);
    // The watch is live once a registration made after it starts shows up.
    let seen = '';
    w.child.stdout!.on('data', (d) => (seen += d));
    await waitFor(() => {
      sb.run(['register', 'probe', '--pid', String(p.pid), '-n', 'w', '-b', url]);
      return seen.includes('"probe"');
    }, 20_000, 'the watch to receive the first event');
    assert.equal(sb.run(['register', 'a', '--pid', String(p.pid), '-n', 'w', '--meta', 'x=1', '-b', url]).code, 0);
    assert.equal(sb.run(['unregister', 'a', '-n', 'w', '-b', url]).code, 0);
    await waitFor(() => seen.includes('"delete"'), 20_000, 'the delete event');
    w.child.kill('SIGINT');
    const done = await w.done;
    assert.equal(done.code, 0, done.stderr);
    const all = done.stdout.trim().split('\n').map((l) => JSON.parse(l));
    // The probe may have been registered more than once while the watch was starting.
    const events = all.slice(all.map((e) => e.key).lastIndexOf('probe'));
    assert.equal(events.length, 3, done.stdout);
    assert.deepEqual(events.slice(1).map((e) => [e.type, e.key]), [['put', 'a'], ['delete', 'a']]);
    assert.deepEqual(events[1].entry.meta, { x: 1 });
    assert.ok(events[0].revision < events[1].revision && events[1].revision < events[2].revision, 'revisions increase');

    const replay = sb.run(['watch', '-b', url, '-n', 'w', '--since', String(events[0].revision), '--count', '2', '--json', '--timeout', '30']);
    assert.equal(replay.code, 0, replay.stderr);
    assert.deepEqual(replay.stdout.trim().split('\n').map((l) => JSON.parse(l).revision), [events[1].revision, events[2].revision]);
  });

  it('prints readable lines and stops on SIGINT with exit 0', async () => {
    const p = await spawnSleeper();
    const w = sb.start(['watch', '-b', url, '-n', 'human']);
    let seen = '';
    w.child.stdout!.on('data', (d) => (seen += d));
    await waitFor(() => {
      sb.run(['register', 'h1', '--pid', String(p.pid), '-n', 'human', '-b', url]);
      return /PUT\s+human\/h1 pid=\d+/.test(seen);
    }, 20_000, 'a PUT line');
    w.child.kill('SIGINT');
    const done = await w.done;
    assert.equal(done.code, 0, done.stderr);
  });

  it('a backend without a feed is refused with exit 2', () => {
    const r = sb.run(['watch', '-b', `sqlite:${sb.dir}/x.db`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has no change feed/);
  });
});
