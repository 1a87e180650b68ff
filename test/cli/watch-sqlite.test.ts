/**
 * `registry watch` on the default SQLite store, across processes (docs/feed.md): a watch in one
 * process sees `registry register` / `unregister` run by others; `--since` replays; a compacted
 * revision is refused with the same message and exit code as through a node serving the same file.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { spawnServe } from '../support/node.js';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';

describe('registry watch on sqlite: across processes', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('a watch of the default store sees registrations and removals made by other registry processes', async () => {
    const p = await spawnSleeper();
    // The default store exists once something is registered (a watch alone creates nothing).
    expect(sb.run(['register', 'first', '--pid', String(p.pid)]).code).to.equal(0);
    const w = sb.start(['watch', '--json', '--timeout', '90']);
    let seen = '';
    w.child.stdout!.on('data', (d) => (seen += d));
    // The watch is live once a registration made after it starts shows up.
    await waitFor(
      () => {
        sb.run(['register', 'probe', '--pid', String(p.pid)]);
        return seen.includes('"probe"');
      },
      30_000,
      'the watch to see a registration from another process',
    );
    expect(sb.run(['register', 'a', '--pid', String(p.pid), '--meta', 'x=1']).code).to.equal(0);
    expect(sb.run(['unregister', 'a']).code).to.equal(0);
    await waitFor(() => seen.includes('"delete"'), 30_000, 'the delete event');
    w.child.kill('SIGINT');
    const done = await w.done;
    expect(done.code, done.stderr).to.equal(0);
    const all = done.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const events = all.slice(all.map((e) => e.key).lastIndexOf('probe'));
    expect(events.map((e) => [e.type, e.key])).to.deep.equal([
      ['put', 'probe'],
      ['put', 'a'],
      ['delete', 'a'],
    ]);
    expect(events[1].entry.meta).to.deep.equal({ x: 1 });
    expect(events[1].revision).to.equal(events[0].revision + 1);
    expect(events[2].revision).to.equal(events[1].revision + 1);

    // --since replays what came after a revision, then stops at --count.
    const replay = sb.run([
      'watch',
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
    // Readable lines too.
    const human = sb.run(['watch', '--since', String(events[0].revision), '--count', '2', '--timeout', '30']);
    expect(human.stdout).to.match(/^#\d+ PUT {4}default\/a pid=\d+ node=\S+ meta=x=1\n#\d+ DELETE default\/a\n$/);
  });

  it('--since a compacted revision: exit 4 (COMPACTED) and "list again", the same as through a node on the file; ahead: exit 2', async () => {
    const file = join(sb.dir, 'compact.db');
    const reg = await ProcessRegistry.open({
      backend: `sqlite:${file}`,
      cleanupInterval: 0,
      backendOpts: { feedRetention: 5 },
    });
    for (let i = 0; i < 300; i++) await reg.register(`k${i}`, process.pid);
    await reg.close();
    const direct = sb.run(['watch', '-b', `sqlite:${file}`, '--since', '1', '--timeout', '10']);
    expect(direct.code, direct.stderr).to.equal(4);
    expect(direct.stderr).to.match(
      /^registry: revision 1 is compacted \(oldest kept: \d+\): list again and watch from the current revision\n$/,
    );
    const node = await spawnServe(['-b', `sqlite:${file}`]);
    try {
      const via = sb.run(['watch', '-b', node.url, '--since', '1', '--timeout', '10']);
      expect(via.code, 'the same exit code as through a node').to.equal(direct.code);
      expect(via.stderr).to.include(direct.stderr.replace(/^registry: /, '').trim());
    } finally {
      node.child.kill('SIGTERM');
      await node.exited;
    }
    const ahead = sb.run(['watch', '-b', `sqlite:${file}`, '--since', '100000', '--timeout', '10']);
    expect(ahead.code, ahead.stderr).to.equal(2);
    expect(ahead.stderr).to.match(/ahead of the feed's current revision 300/);
  });
});
