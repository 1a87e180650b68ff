/**
 * `registry repl` on a real pseudo-terminal (node-pty): typing, TAB completion read back from the
 * screen, inline hints, Ctrl-C (cancels a running command, or the line), history kept across
 * sessions, Ctrl-R, Ctrl-D, and an @inquirer/prompts confirmation inside the REPL.
 */
import { expect } from 'chai';
import { present } from '../support/expect.js';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { killAllSleepers, spawnSleeper, waitFor, type Sleeper } from '../support/processes.js';
import { BIN, spawnRepl, type Term } from './pty.js';
import { ProcessRegistry } from '../../src/registry/service.js';

const tmp = tempDir('procreg-repl-tty-');
const env = {
  XDG_DATA_HOME: join(tmp.dir, 'data'),
  XDG_STATE_HOME: join(tmp.dir, 'state'),
  XDG_CONFIG_HOME: join(tmp.dir, 'config'),
};
const db = `sqlite:${join(tmp.dir, 'tty.db')}`;
const PROMPT = /default(?: \[\d+\])?>$/;

function cli(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args, '-b', db], {
    env: { ...process.env, ...env, NO_COLOR: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`registry ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Poll the screen until `ok`, with a deadline; the failure shows the screen at that moment. */
async function until(t: Term, ok: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  try {
    await waitFor(ok, timeoutMs, what);
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; cursor line: ${JSON.stringify(t.cursorLine())}; screen since mark:\n${t.text()}`,
    );
  }
}

/** Wait for an idle prompt on the cursor line (raw mode: the REPL reads keys). */
async function prompt(t: Term, re = PROMPT): Promise<void> {
  await until(t, () => re.test(t.cursorLine()), `a prompt matching ${re}`);
}

/** Type, then wait until the cursor line ends as expected (what the user sees after the keys, hints included). */
async function typeUntil(t: Term, keys: string, line: RegExp): Promise<void> {
  t.type(keys);
  await until(t, () => line.test(t.cursorLine()), `cursor line to show ${line}`);
}

/** Type a command at a fresh prompt and wait until it runs (the REPL gave the terminal its cooked mode). */
async function start(t: Term, line: string): Promise<void> {
  await prompt(t);
  t.mark();
  t.type(`${line}\r`);
  await until(t, () => t.cooked(), `${line} to run (terminal in cooked mode)`);
}

/** Run a line and wait for its output and the next prompt. */
async function run(t: Term, line: string): Promise<string> {
  await prompt(t);
  t.mark();
  t.type(`${line}\r`);
  await until(t, () => t.text().split('\n').length > 1 && PROMPT.test(t.cursorLine()), `${line} to finish`);
  return t.text().split('\n').slice(1, -1).join('\n');
}

describe('repl on a terminal', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  let p: Sleeper;
  const terms: Term[] = [];
  const open = (args: string[] = ['-b', db]) => {
    const t = spawnRepl(args, env);
    terms.push(t);
    return t;
  };

  before(async () => {
    p = await spawnSleeper();
    cli('register', 'web-1', '--pid', String(p.pid));
    cli('register', 'web-2', '--pid', String(p.pid));
    cli('register', 'worker', '--pid', String(p.pid), '--meta', 'role=queue');
    cli('register', 'api', '--pid', String(p.pid), '-n', 'prod');
  });
  after(async () => {
    for (const t of terms) await t.kill();
    await killAllSleepers();
    tmp.cleanup();
  });

  it('shows the backend and namespace in the prompt, runs commands, leaves on Ctrl-D', async () => {
    const t = open();
    await prompt(t);
    expect(t.cursorLine()).to.match(/^sqlite:.*tty\.db default>$/);
    expect(await run(t, 'lookup worker --field role')).to.equal('queue');
    expect(await run(t, 'lookup nobody')).to.match(/no live registration for "nobody"/);
    expect(t.cursorLine()).to.match(/default \[3\]>$/);
    expect(await run(t, '$?')).to.equal('3');
    t.type('\x04');
    expect(await t.exited).to.equal(0);
  });

  it('TAB completes commands, topics, flags, namespaces and keys from the backend', async () => {
    const t = open();
    await prompt(t);
    await typeUntil(t, 'look\t', /> lookup( KEY)?$/);
    await typeUntil(t, 'wo\t', /> lookup worker$/);
    t.type('\x15'); // Ctrl-U: clear the line
    await typeUntil(t, 'lookup we\t', /> lookup web-$/); // common prefix of web-1, web-2
    t.mark();
    t.type('\t');
    await until(t, () => /web-1\s+web-2/.test(t.text()), 'the candidate list');
    await typeUntil(t, '2\r', PROMPT);
    expect(t.text()).to.match(/\nkey:\s+web-2\n/);
    await typeUntil(t, 'me\t', /> meta( get\|set)?$/);
    await typeUntil(t, 'g\t', /> meta get( KEY \[FIELD\])?$/);
    t.type('\x15');
    await typeUntil(t, 'list --al\t', /> list --all-namespaces$/);
    t.type('\x15');
    await typeUntil(t, 'count -n pr\t', /> count -n prod$/);
    t.mark();
    t.type('\r');
    await prompt(t);
    expect(t.text()).to.match(/\n1\n/);
    await typeUntil(t, 'ns pr\t', /> ns prod$/);
    t.type('\r');
    await prompt(t, /prod>$/);
    await typeUntil(t, 'lookup a\t', /prod> lookup api$/);
    t.type('\x15\x04');
    expect(await t.exited).to.equal(0);
  });

  it('shows a dim hint of what a command expects, gone once typing starts', async () => {
    const t = open();
    await prompt(t);
    await typeUntil(t, 'lookup ', /> lookup KEY$/);
    await typeUntil(t, 'w', /> lookup w$/);
    t.type('\x15');
    await typeUntil(t, 'use ', /> use URL\|PROFILE$/);
    t.type('\x15');
    await typeUntil(t, 'restore d.ndjson --mode ', /--mode merge\|replace$/);
    t.type('\x15\x04');
    expect(await t.exited).to.equal(0);
  });

  it('Ctrl-C cancels a running await (status 130) and the REPL stays; at the prompt it drops the line', async () => {
    const t = open();
    await start(t, 'await never-registered --timeout 120s');
    t.type('\x03');
    await prompt(t, /default \[130\]>$/);
    expect(t.text()).to.match(/waiting for "never-registered": cancelled/);
    expect(await run(t, '$?')).to.equal('130');
    await typeUntil(t, 'lookup half-typed', /lookup half-typed$/);
    t.mark();
    t.type('\x03');
    await prompt(t);
    expect(t.text()).to.match(/lookup half-typed\^C/);
    expect(await run(t, 'count')).to.match(/^3$/);
    t.type('exit 0\r');
    expect(await t.exited).to.equal(0);
  });

  it('Ctrl-C during `run NAME -- CMD` stops the child, which unregisters; the REPL stays', async () => {
    const t = open();
    await start(t, 'run holder -- sleep 120');
    const registered = () =>
      spawnSync(process.execPath, [BIN, 'lookup', 'holder', '--field', 'pid', '-b', db], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
    await until(t, () => registered().status === 0, 'the child to be registered as holder');
    const child = Number(registered().stdout.trim());
    t.type('\x03');
    await prompt(t, /default \[130\]>$/);
    await until(t, () => !existsSync(`/proc/${child}`), `the child ${child} to exit`);
    expect(await run(t, 'lookup holder')).to.match(/no live registration for "holder"/);
    t.type('\x04');
    expect(await t.exited).to.equal(0);
  });

  it("Ctrl-C stops a `watch` of the REPL's own memory: backend and gives the prompt back", async () => {
    const t = open(['-b', 'memory:']);
    await prompt(t);
    await run(t, `register a --pid ${p.pid}`);
    t.mark();
    t.type('watch --since 0\r');
    await until(t, () => /PUT\s+default\/a pid=/.test(t.text()), 'the replayed event');
    t.type('\x03');
    await prompt(t);
    expect(await run(t, 'count')).to.equal('1'); // same warm memory: backend
    t.type('\x04');
    expect(await t.exited).to.equal(0);
  });

  it('keeps history per backend across sessions: arrows and Ctrl-R find earlier lines', async () => {
    const other = `sqlite:${join(tmp.dir, 'hist.db')}`;
    await (await ProcessRegistry.open({ backend: other, cleanupInterval: 0 })).close(); // an empty store (reads never create one)
    const a = open(['-b', other]);
    await prompt(a);
    await run(a, 'count');
    await run(a, 'lookup web-1 --field pid');
    await run(a, 'list --limit 1');
    a.type('exit\r');
    expect(await a.exited).to.equal(0);
    const files = readdirSync(join(tmp.dir, 'state', 'registry', 'history'));
    const file = files.find((f) => f.includes('hist.db'));
    present(file, `a history file for hist.db in ${files.join(', ')}`);
    expect(readFileSync(join(tmp.dir, 'state', 'registry', 'history', file), 'utf8')).to.equal(
      'count\nlookup web-1 --field pid\nlist --limit 1\nexit\n',
    );

    const b = open(['-b', other]);
    await prompt(b);
    await typeUntil(b, '\x1b[A', /> exit$/);
    await typeUntil(b, '\x1b[A', /> list --limit 1$/);
    await typeUntil(b, '\x1b[A', /> lookup web-1 --field pid$/);
    b.type('\x15');
    await typeUntil(b, '\x12', /\(reverse-i-search\)`':$/);
    await typeUntil(b, 'cou', /\(reverse-i-search\)`cou': count$/);
    await typeUntil(b, 'x', /\(failed reverse-i-search\)`coux': count$/);
    b.type('\x07'); // Ctrl-G: leave search, line as it was
    await prompt(b);
    await typeUntil(b, '\x12l', /`l': list --limit 1$/);
    await typeUntil(b, '\x12', /`l': lookup web-1 --field pid$/); // Ctrl-R again: older match
    b.mark();
    b.type('\r');
    await prompt(b);
    expect(b.text()).to.match(/no live registration for "web-1"/); // hist.db is empty: the found line ran
    b.type('\x04');
    expect(await b.exited).to.equal(0);
    // the default backend's history was not touched by this one
    expect(!readdirSync(join(tmp.dir, 'state', 'registry', 'history')).some((f) => f.includes('count'))).to.be.ok;
    expect(existsSync(join(tmp.dir, 'state', 'registry', 'history', file))).to.be.ok;
  });

  it('asks with an @inquirer/prompts confirmation before restore --mode replace, then takes the prompt back', async () => {
    const t = open();
    await prompt(t);
    const dump = join(tmp.dir, 'snap.ndjson');
    await run(t, `dump -o ${dump}`);
    t.mark();
    t.type(`restore ${dump} --mode replace\r`);
    await until(t, () => /Replace everything in .* with .*snap\.ndjson\?/.test(t.text()), 'the confirmation');
    t.type('n\r');
    await prompt(t, /default \[2\]>$/);
    expect(t.text()).to.match(/restore cancelled: nothing was changed/);
    t.mark();
    t.type(`restore ${dump} --mode replace\r`);
    await until(t, () => /Replace everything/.test(t.text()), 'the confirmation again');
    t.type('\x03'); // Ctrl-C in the question: a "no", and the REPL stays
    await prompt(t, /default \[2\]>$/);
    expect(t.text()).to.match(/restore cancelled: nothing was changed/);
    t.mark();
    t.type(`restore ${dump} --mode replace\r`);
    await until(t, () => /Replace everything/.test(t.text()), 'the confirmation once more');
    t.type('y\r');
    await prompt(t);
    expect(t.text()).to.match(/restored 4 registrations \(replace, 4 removed first\)/);
    expect(await run(t, 'count')).to.equal('3'); // keys and the editor still work after the prompt
    await typeUntil(t, 'look\t', /> lookup( KEY)?$/);
    t.type('\x15exit 5\r');
    expect(await t.exited).to.equal(5);

    const ci = spawnRepl(['-b', db], { ...env, CI: 'true' }); // never a prompt under CI
    terms.push(ci);
    await prompt(ci);
    ci.mark();
    ci.type(`restore ${dump} --mode replace\r`);
    await prompt(ci, /default \[2\]>$/);
    expect(ci.text()).to.match(/--mode replace removes every registration not in the dump: pass --yes to confirm/);
    expect(ci.text()).to.not.match(/Replace everything/);
    ci.type('\x04');
    expect(await ci.exited).to.equal(0);
  });
});
