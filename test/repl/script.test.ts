/**
 * `registry repl` with stdin not a terminal: lines run as a script through the same commands as
 * the CLI, no prompt noise, stop at the first failure with its exit code (or --keep-going).
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { killAllSleepers, spawnSleeper, waitFor, type Sleeper } from '../support/processes.js';
import { BIN } from './pty.js';
import { ProcessRegistry } from '../../src/registry/service.js';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

const tmp = tempDir('procreg-repl-script-');
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
async function repl(args: string[], script: string, timeoutMs = 30_000): Promise<Ran> {
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

function cli(args: string[]): Ran {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, cwd: tmp.dir, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('repl as a script (stdin not a TTY)', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  let db: string;
  let p: Sleeper;
  before(async () => {
    db = `sqlite:${join(tmp.dir, 'script.db')}`;
    p = await spawnSleeper();
  });
  after(async () => {
    await killAllSleepers();
    tmp.cleanup();
  });

  it('runs each line through the CLI commands, printing only their output', async () => {
    const r = await repl(
      ['-b', db],
      `register web-1 --pid ${p.pid} --meta role=web\n\n# a comment\nlookup web-1 --field pid\ncount\n`,
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal(
      `registered web-1 → pid ${p.pid} on ${cli(['lookup', 'web-1', '-b', db, '--field', 'node']).stdout.trim()} (namespace default)\n${p.pid}\n1\n`,
    );
    expect(r.stderr).to.equal('');
  });

  it('prints what the one-shot CLI prints, byte for byte (one implementation)', async () => {
    const viaRepl = await repl(['-b', db], 'list --json\nlookup web-1 --json\nmeta get web-1\nlookup nope\n');
    const list = cli(['list', '--json', '-b', db]);
    const lookup = cli(['lookup', 'web-1', '--json', '-b', db]);
    const meta = cli(['meta', 'get', 'web-1', '-b', db]);
    const missing = cli(['lookup', 'nope', '-b', db]);
    expect(viaRepl.stdout).to.equal(list.stdout + lookup.stdout + meta.stdout);
    expect(viaRepl.stderr).to.equal(missing.stderr);
    expect(viaRepl.code).to.equal(missing.code);
    expect(viaRepl.code).to.equal(3);
  });

  it('stops at the first failing line and exits with its code', async () => {
    const r = await repl(['-b', db], `lookup web-1 --field pid\nregister web-1 --pid 1\ncount\n`);
    expect(r.code).to.equal(4); // already registered by a live process
    expect(r.stdout).to.equal(`${p.pid}\n`); // count never ran
    expect(r.stderr).to.match(/already registered|held by/i);
  });

  it("--keep-going runs every line and exits with the first failure's code", async () => {
    const r = await repl(
      ['-b', db, '--keep-going'],
      'lookup nope\nregister bad --pid notapid\ncount\n$?\nunregister nope\n',
    );
    expect(r.code).to.equal(3);
    expect(r.stdout).to.equal('1\n0\nnope was not registered (nothing to do)\n');
    expect(r.stderr.trim().split('\n').length, r.stderr).to.equal(2);
  });

  it('$? shows the last exit status; exit N leaves with N', async () => {
    const r = await repl(['-b', db, '-k'], 'lookup nope\n$?\nregister x --pid 0\n$?\ncount\n$?\nexit 7\ncount\n');
    expect(r.code).to.equal(7);
    expect(r.stdout).to.equal('3\n2\n1\n0\n');
  });

  it('parses shell-like quoting; bad lines are usage errors (exit 2)', async () => {
    const r = await repl(
      ['-b', db],
      `register 'a key' --pid ${p.pid} --meta-json "{\\"say\\": \\"it's\\"}"\nlookup "a key" --field say\nunregister a\\ key\n`,
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.split('\n')[1]).to.equal("it's");
    for (const line of ['lookup "open', 'frobnicate now', 'lookup a\\', 'repl']) {
      const bad = await repl(['-b', db], `${line}\ncount\n`);
      expect(bad.code, `${line}: ${bad.stderr}`).to.equal(2);
      expect(bad.stdout).to.equal('');
      expect(bad.stderr.trim().split('\n').length, bad.stderr).to.equal(1);
      expect(bad.stderr).to.not.match(/\n\s+at /);
    }
  });

  it('built-ins: ns, json, use, help, COMMAND --help', async () => {
    const other = `sqlite:${join(tmp.dir, 'other.db')}`;
    await (await ProcessRegistry.open({ backend: other, cleanupInterval: 0 })).close(); // reads never create it
    const r = await repl(
      ['-b', db],
      `ns staging\nregister api --pid ${p.pid}\ncount\nns\njson on\ncount\njson off\nuse ${other}\ncount\nhelp\nlookup --help\ncount -n staging\n`,
    );
    expect(r.code, r.stderr).to.equal(0);
    const out = r.stdout;
    expect(out).to.match(
      /^registered api → pid \d+ on .* \(namespace staging\)\n1\nstaging\n\{\n {2}"namespaces": \{\n {4}"staging": 1\n {2}\},\n {2}"total": 1\n\}\n/,
    );
    expect(out).to.match(
      new RegExp(`using ${other.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}, namespace staging\\n0\\n`),
    );
    expect(out).to.match(/REPL commands[\s\S]*use URL\|PROFILE[\s\S]*Registry commands[\s\S]*meta get/);
    expect(out).to.match(/USAGE\n {2}\$ registry lookup KEY/);
    expect(out).to.match(/\n0\n$/); // count -n staging on the other db
    expect(cli(['count', '-n', 'staging', '-b', db]).stdout).to.equal('1\n');
  });

  it('use PROFILE reads the config file; a bad target keeps the old backend', async () => {
    const cfg = join(tmp.dir, 'registry.config.json');
    writeFileSync(cfg, JSON.stringify({ profiles: { scratch: { backend: 'memory:', namespace: 'scr' } } }));
    const r = await repl(['-b', db, '-k'], 'use nosuchprofile\nuse bogus://x\ncount\nuse scratch\ncount\nns\n');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/no profile "nosuchprofile"/);
    expect(r.stderr).to.match(/unknown backend scheme "bogus:"/);
    expect(r.stdout).to.equal(
      `${cli(['count', '-b', db]).stdout}using memory: (profile scratch), namespace scr\n0\nscr\n`,
    );
  });

  it('never prompts in a script: restore --mode replace needs --yes', async () => {
    const dump = join(tmp.dir, 'script.ndjson');
    const r = await repl(
      ['-b', db, '-k'],
      `dump -o ${dump}\nrestore ${dump} --mode replace\nrestore ${dump} --mode replace --yes\n`,
    );
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/pass --yes to confirm/);
    expect(r.stdout).to.match(/restored \d+ registrations \(replace/);
  });

  it('sweeps dead registrations periodically while it runs (a long-lived process)', async () => {
    const file = join(tmp.dir, 'sweep.db');
    const cfg = join(tmp.dir, 'sweep.config.json');
    writeFileSync(
      cfg,
      JSON.stringify({ profiles: { sweep: { backend: `sqlite:${file}`, backendOpts: { cleanupInterval: 100 } } } }),
    );
    const s = await spawnSleeper();
    const child = spawn(process.execPath, [BIN, 'repl', '--config', cfg, '--profile', 'sweep'], {
      env,
      cwd: tmp.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stdin.write(`register doomed --pid ${s.pid}\n`);
    await waitFor(() => stdout.includes('registered doomed'), 15_000, 'the registration');
    const raw = await ProcessRegistry.open({ backend: `sqlite:${file}`, cleanupInterval: 0 });
    try {
      const stored = async () => (await raw.backend.list('default', { limit: 10 })).items.map((e) => e.key);
      expect(await stored()).to.deep.equal(['doomed']);
      await s.kill();
      // Nobody looks the key up: only the REPL's periodic sweep can remove the stored row.
      await waitFor(
        async () => (await stored()).length === 0,
        20_000,
        "the REPL's sweep to remove the dead registration",
      );
    } finally {
      await raw.close();
      const exited = once(child, 'exit');
      child.stdin.end();
      await exited;
    }
  });

  it('a backend that cannot be opened is one line and exit 2, before any line runs', async () => {
    const r = await repl(['-b', 'bogus://x'], 'count\n');
    expect(r.code).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.match(/^registry: unknown backend scheme "bogus:"[^\n]*\n$/);
  });

  it('SIGTERM closes the store and exits 143', async () => {
    const child = spawn(process.execPath, [BIN, 'repl', '-b', db], {
      env,
      cwd: tmp.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stdin.write('count\n');
    await waitFor(() => stdout !== '', 15_000, 'the count');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).to.equal(143);
  });

  it('SIGINT cancels the running command and ends the script with 130', async () => {
    const child = spawn(process.execPath, [BIN, 'repl', '-b', db], {
      env,
      cwd: tmp.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.write('count\nawait never-here --timeout 60s\ncount\n');
    await waitFor(() => stdout === '1\n', 15_000, 'the first count');
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const [code] = (await exited) as [number | null];
    expect(code, stderr).to.equal(130);
    expect(stdout).to.equal('1\n');
    expect(stderr).to.match(/cancelled/);
  });
});
