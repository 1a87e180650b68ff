/**
 * `watch` inside the REPL (docs/feed.md): the memory backend's in-process feed and the SQLite log,
 * replayed with --since from revisions the session's own writes made.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { BIN } from './pty.js';

const tmp = tempDir('procreg-repl-feed-');
const env: NodeJS.ProcessEnv = {
  ...process.env,
  XDG_DATA_HOME: join(tmp.dir, 'data'),
  XDG_STATE_HOME: join(tmp.dir, 'state'),
  XDG_CONFIG_HOME: join(tmp.dir, 'config'),
  NO_COLOR: '1',
  CI: '',
};
delete env.REGISTRY_BACKEND;
delete env.REGISTRY_PROFILE;

/** Pipe `script` into `registry repl ARGS` and wait (with a deadline) for it to exit. */
async function repl(args: string[], script: string, timeoutMs = 60_000) {
  const child = spawn(process.execPath, [BIN, 'repl', ...args], { env, cwd: tmp.dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(script);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe('repl: watch --since on the memory feed and the sqlite log', function () {
  this.timeout(180_000);
  after(async () => {
    await killAllSleepers();
    tmp.cleanup();
  });

  for (const backend of ['memory:', `sqlite:${join(tmp.dir, 'feed.db')}`]) {
    it(`${backend.split(':')[0]}: the session's writes replay from a revision, in order`, async () => {
      const p = await spawnSleeper();
      const r = await repl(
        ['-b', backend],
        [
          `register a --pid ${p.pid}`,
          `register b --pid ${p.pid} --meta x=1`,
          'unregister a',
          'watch --since 1 --count 2 --json --timeout 20',
          '',
        ].join('\n'),
      );
      expect(r.code, r.stderr).to.equal(0);
      const events = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      expect(events.map((e) => [e.revision, e.type, e.key])).to.deep.equal([
        [2, 'put', 'b'],
        [3, 'delete', 'a'],
      ]);
      expect(events[0].entry.meta).to.deep.equal({ x: 1 });
    });
  }
});
