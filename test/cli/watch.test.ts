/** `registry watch` against a real node: events in order, NDJSON, --since replay, Ctrl-C stop. */
import { expect } from 'chai';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { spawnServe, type ServeProcess } from '../support/node.js';
import { fixture } from '../migrations/support.js';

let sb: Sandbox;
// The node runs in its own process: the CLI calls below are synchronous spawns.
let node: ServeProcess;
let url: string;

describe('registry watch', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
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

  it('streams puts and deletes as NDJSON, and replays from a revision', async () => {
    const p = await spawnSleeper();
    const w = sb.start(['watch', '-b', url, '-n', 'w', '--json', '--timeout', '60']);
    // The watch is live once a registration made after it starts shows up.
    let seen = '';
    w.child.stdout!.on('data', (d) => (seen += d));
    await waitFor(
      () => {
        sb.run(['register', 'probe', '--pid', String(p.pid), '-n', 'w', '-b', url]);
        return seen.includes('"probe"');
      },
      20_000,
      'the watch to receive the first event',
    );
    expect(sb.run(['register', 'a', '--pid', String(p.pid), '-n', 'w', '--meta', 'x=1', '-b', url]).code).to.equal(0);
    expect(sb.run(['unregister', 'a', '-n', 'w', '-b', url]).code).to.equal(0);
    await waitFor(() => seen.includes('"delete"'), 20_000, 'the delete event');
    w.child.kill('SIGINT');
    const done = await w.done;
    expect(done.code, done.stderr).to.equal(0);
    const all = done.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // The probe may have been registered more than once while the watch was starting.
    const events = all.slice(all.map((e) => e.key).lastIndexOf('probe'));
    expect(events.length, done.stdout).to.equal(3);
    expect(events.slice(1).map((e) => [e.type, e.key])).to.deep.equal([
      ['put', 'a'],
      ['delete', 'a'],
    ]);
    expect(events[1].entry.meta).to.deep.equal({ x: 1 });
    expect(events[0].revision < events[1].revision && events[1].revision < events[2].revision, 'revisions increase').to
      .be.ok;

    const replay = sb.run([
      'watch',
      '-b',
      url,
      '-n',
      'w',
      '--since',
      String(events[0].revision),
      '--count',
      '2',
      '--json',
      '--timeout',
      '30',
    ]);
    expect(replay.code, replay.stderr).to.equal(0);
    expect(
      replay.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).revision),
    ).to.deep.equal([events[1].revision, events[2].revision]);
  });

  it('prints readable lines and stops on SIGINT with exit 0', async () => {
    const p = await spawnSleeper();
    const w = sb.start(['watch', '-b', url, '-n', 'human']);
    let seen = '';
    w.child.stdout!.on('data', (d) => (seen += d));
    await waitFor(
      () => {
        sb.run(['register', 'h1', '--pid', String(p.pid), '-n', 'human', '-b', url]);
        return /PUT\s+human\/h1 pid=\d+/.test(seen);
      },
      20_000,
      'a PUT line',
    );
    w.child.kill('SIGINT');
    const done = await w.done;
    expect(done.code, done.stderr).to.equal(0);
  });

  it('a backend without a feed is refused with exit 2', () => {
    // An existing file (on a missing one a read-only command stops earlier: no registry, exit 6).
    // SQLite has a feed (test/cli/watch-sqlite.test.ts); a legacy store has none.
    const { path } = fixture('clean', sb.dir);
    const r = sb.run(['watch', '-b', `legacy:${path}`]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/has no change feed/);
  });
});
