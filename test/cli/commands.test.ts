/**
 * The `registry` CLI end to end: the real binary, the SQLite default in a temporary XDG folder,
 * real processes. Exit codes are those of design §4.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';
import { pidExists } from '../../src/registry/liveness.js';

let sb: Sandbox;
before(() => {
  sb = sandbox();
});
after(async () => {
  await killAllSleepers();
  sb.cleanup();
});

describe('registry CLI: the essentials', () => {
  it('register, lookup, list, count, unregister on the SQLite default', async () => {
    const p = await spawnSleeper();
    const r = sb.run(['register', 'web-1', '--pid', String(p.pid), '--meta', 'role=web', '--meta', 'port=8080']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /registered web-1 → pid \d+/);
    assert.ok(existsSync(join(sb.env.XDG_DATA_HOME!, 'registry', 'registry.db')), 'the default database is created under XDG_DATA_HOME');

    const lk = sb.run(['lookup', 'web-1', '--json']);
    assert.equal(lk.code, 0, lk.stderr);
    const e = lk.json<{ pid: number; meta: Record<string, unknown>; namespace: string }>();
    assert.equal(e.pid, p.pid);
    assert.deepEqual(e.meta, { role: 'web', port: 8080 }, 'numbers stay numbers');
    assert.equal(e.namespace, 'default');
    assert.equal(sb.run(['lookup', 'web-1', '--field', 'pid']).stdout.trim(), String(p.pid));

    const table = sb.run(['list']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /KEY.*PID.*NODE.*META/);
    assert.match(table.stdout, /web-1/);
    assert.doesNotMatch(table.stdout, /\x1b\[/, 'no colour codes when not a TTY');

    assert.equal(sb.run(['count']).stdout.trim(), '1');
    const un = sb.run(['unregister', 'web-1', '--json']);
    assert.deepEqual(un.json(), { namespace: 'default', key: 'web-1', removed: true });
    assert.equal(sb.run(['unregister', 'web-1', '--json']).json<{ removed: boolean }>().removed, false, 'idempotent');
    assert.equal(sb.run(['lookup', 'web-1']).code, 3);
  });

  it('the fast path and oclif print the same lookup', async () => {
    const p = await spawnSleeper();
    assert.equal(sb.run(['register', 'same', '--pid', String(p.pid), '--meta-json', '{"b":[1,2],"a":"x"}']).code, 0);
    for (const args of [['lookup', 'same'], ['lookup', 'same', '--json'], ['lookup', 'same', '--field', 'node'], ['lookup', 'nope', '--json'], ['lookup', 'nope']]) {
      const fast = sb.run(args);
      const slow = sb.run(args, { env: { REGISTRY_NO_FASTPATH: '1' } });
      assert.equal(fast.code, slow.code, args.join(' '));
      // Ages ("0s ago") may tick between the two runs.
      const norm = (s: string) => s.replace(/\(\d+s ago\)/g, '(Ns ago)');
      assert.equal(norm(fast.stdout), norm(slow.stdout), args.join(' '));
      assert.equal(fast.stderr, slow.stderr, args.join(' '));
    }
  });

  it('conflict: exit 4 and the holder, in JSON too', async () => {
    const [a, b] = [await spawnSleeper(), await spawnSleeper()];
    assert.equal(sb.run(['register', 'db', '--pid', String(a.pid), '-n', 'conf']).code, 0);
    const r = sb.run(['register', 'db', '--pid', String(b.pid), '-n', 'conf']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /held by pid \d+/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    const j = sb.run(['register', 'db', '--pid', String(b.pid), '-n', 'conf', '--json']);
    assert.equal(j.code, 4);
    const err = j.json<{ error: { code: string; holder: { pid: number }; exitCode: number } }>().error;
    assert.equal(err.code, 'ALREADY_REGISTERED');
    assert.equal(err.holder.pid, a.pid);
    assert.equal(err.exitCode, 4);
  });

  it('bad input: one line, exit 2, no stack trace, nothing written', async () => {
    const p = await spawnSleeper();
    const cases: Array<[string[], RegExp]> = [
      [['register', 'k', '--pid', 'abc'], /invalid pid/],
      [['register', 'k', '--pid', '0'], /invalid pid/],
      [['register', 'k', '--pid', String(p.pid), '-n', 'bad ns!'], /invalid namespace/],
      [['register', 'a\u0007b', '--pid', String(p.pid)], /control characters/],
      [['register', 'k', '--pid', String(p.pid), '--meta-json', '[1,2]'], /must be a JSON object/],
      [['register', 'k', '--pid', String(p.pid), '--meta-json', '{not json'], /not valid JSON/],
      [['register', 'k', '--pid', String(p.pid), '--meta-json', JSON.stringify({ x: 'y'.repeat(70_000) })], /65536-byte limit/],
      [['register', 'k', '--pid', String(p.pid), '--meta', 'novalue'], /field=value/],
      [['lookup', 'k', '-b', 'bogus://x'], /unknown backend scheme "bogus:"/],
      [['lookup', 'k', '-b', 'nonsense'], /invalid backend/],
      [['list', '--where', 'oops'], /field=value/],
      [['await', 'k', '--timeout', 'soon'], /invalid --timeout/],
      [['signal', 'k', 'NOTASIG'], /unknown signal/],
      [['register'], /Missing 1 required arg/],
      [['lookup', 'k', '--no-such-flag'], /Nonexistent flag/],
    ];
    for (const [args, re] of cases) {
      const r = sb.run(args, { env: { REGISTRY_BACKEND: `sqlite:${join(sb.dir, 'bad-input.db')}` } });
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack trace: ${r.stderr}`);
    }
    const left = sb.run(['list', '--json', '-b', `sqlite:${join(sb.dir, 'bad-input.db')}`]);
    assert.deepEqual(left.json<{ items: unknown[] }>().items, [], 'nothing was written');
  });

  it('a dead pid cannot be registered (exit 2) and a dead holder is never returned', async () => {
    const p = await spawnSleeper();
    assert.equal(sb.run(['register', 'ghost', '--pid', String(p.pid)]).code, 0);
    await p.kill();
    assert.equal(sb.run(['lookup', 'ghost']).code, 3);
    const r = sb.run(['register', 'ghost2', '--pid', String(p.pid)]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a running process/);
  });

  it('corrupt, foreign and unreachable database files', () => {
    const corrupt = join(sb.dir, 'corrupt.db');
    writeFileSync(corrupt, 'this is not a database, just some text that is long enough to look like a header'.repeat(20));
    const r1 = sb.run(['lookup', 'k', '-b', `sqlite:${corrupt}`]);
    assert.equal(r1.code, 2, r1.stderr);
    assert.match(r1.stderr, /not a usable SQLite database/);
    assert.ok(readFileSync(corrupt, 'utf8').startsWith('this is not a database'), 'the file is left as it was');

    const notDir = join(sb.dir, 'plain-file');
    writeFileSync(notDir, 'x');
    const r2 = sb.run(['lookup', 'k', '-b', `sqlite:${notDir}/sub/registry.db`]);
    assert.equal(r2.code, 6, r2.stderr);
    assert.match(r2.stderr, /cannot create the folder/);

    const dir = join(sb.dir, 'a-dir.db');
    mkdirSync(dir, { recursive: true });
    const r3 = sb.run(['lookup', 'k', '-b', `sqlite:${dir}`]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /is a directory/);
  });

  it('list: --where, --limit with a next cursor, --after, --all-namespaces', async () => {
    const p = await spawnSleeper();
    const b = ['-b', `sqlite:${join(sb.dir, 'list.db')}`];
    for (let i = 0; i < 7; i++) {
      assert.equal(sb.run(['register', `w${i}`, '--pid', String(p.pid), '--meta', `role=${i % 2 ? 'odd' : 'even'}`, '--meta', 'tags=["x","y"]', ...b]).code, 0);
    }
    assert.equal(sb.run(['register', 'other', '--pid', String(p.pid), '-n', 'second', ...b]).code, 0);
    const odd = sb.run(['list', '--where', 'role=odd', '--json', ...b]).json<{ items: Array<{ key: string }> }>();
    assert.deepEqual(odd.items.map((e) => e.key), ['w1', 'w3', 'w5']);
    assert.equal(sb.run(['list', '--where', 'tags=y', '--where', 'role=even', '--json', ...b]).json<{ items: unknown[] }>().items.length, 4);
    const page1 = sb.run(['list', '--limit', '3', '--json', ...b]).json<{ items: Array<{ key: string }>; next: string }>();
    assert.deepEqual(page1.items.map((e) => e.key), ['w0', 'w1', 'w2']);
    assert.equal(page1.next, 'w2');
    const page2 = sb.run(['list', '--limit', '10', '--after', page1.next, '--json', ...b]).json<{ items: Array<{ key: string }>; next?: string }>();
    assert.deepEqual(page2.items.map((e) => e.key), ['w3', 'w4', 'w5', 'w6']);
    assert.equal(page2.next, undefined);
    const all = sb.run(['list', '-A', ...b]);
    assert.match(all.stdout, /NAMESPACE/);
    assert.match(all.stdout, /second/);
    const counts = sb.run(['count', '-A', '--json', ...b]).json<{ namespaces: Record<string, number>; total: number }>();
    assert.deepEqual(counts, { namespaces: { default: 7, second: 1 }, total: 8 });
  });

  it('meta get / set (replace, --merge)', async () => {
    const p = await spawnSleeper();
    const b = ['-b', `sqlite:${join(sb.dir, 'meta.db')}`];
    sb.run(['register', 'svc', '--pid', String(p.pid), '--meta-json', '{"a":1,"b":{"c":2}}', ...b]);
    assert.deepEqual(JSON.parse(sb.run(['meta', 'get', 'svc', ...b]).stdout), { a: 1, b: { c: 2 } });
    assert.equal(sb.run(['meta', 'get', 'svc', 'a', ...b]).stdout.trim(), '1');
    const merged = sb.run(['meta', 'set', 'svc', '--merge', '--meta-json', '{"b":{"c":null,"d":3}}', '--json', ...b]);
    assert.deepEqual(merged.json<{ meta: unknown }>().meta, { a: 1, b: { d: 3 } });
    const replaced = sb.run(['meta', 'set', 'svc', '--meta', 'only=yes', '--json', ...b]);
    assert.deepEqual(replaced.json<{ meta: unknown }>().meta, { only: 'yes' });
    assert.equal(sb.run(['meta', 'set', 'absent', '--meta', 'x=1', ...b]).code, 3);
    assert.equal(sb.run(['meta', 'get', 'absent', ...b]).code, 3);
  });

  it('run: registered for the child\'s lifetime, exit code passed through, signals forwarded', async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'run.db')}`];
    // The child looks itself up through the CLI while it runs.
    const child = `const {spawnSync}=require('child_process');const r=spawnSync(process.execPath,[process.env.BIN,'lookup','job','--field','pid','-b',process.env.DB],{encoding:'utf8'});process.stdout.write('seen:'+r.stdout.trim()+':'+process.pid+'\\n');process.exit(7)`;
    const r = sb.run(['run', 'job', '--meta', 'kind=batch', ...b, '--', process.execPath, '-e', child], {
      env: { BIN, DB: `sqlite:${join(sb.dir, 'run.db')}` },
    });
    assert.equal(r.code, 7, r.stderr);
    const m = /seen:(\d+):(\d+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(m[1], m[2], 'while it runs, the name resolves to the child');
    assert.equal(sb.run(['lookup', 'job', ...b]).code, 3, 'unregistered after exit');

    // SIGTERM to `registry run` reaches the child: exit 128+15.
    const started = sb.start(['run', 'longjob', ...b, '--', process.execPath, '-e', 'setTimeout(()=>{},60000)']);
    let childPid = 0;
    await waitFor(() => {
      const l = sb.run(['lookup', 'longjob', '--field', 'pid', ...b]);
      childPid = Number(l.stdout.trim());
      return l.code === 0;
    }, 20_000, 'longjob to register');
    started.child.kill('SIGTERM');
    const done = await started.done;
    assert.equal(done.code, 143);
    await waitFor(() => !pidExists(childPid), 10_000, 'the child to exit');
    assert.equal(sb.run(['lookup', 'longjob', ...b]).code, 3);

    const missing = sb.run(['run', 'x', ...b, '--', '/no/such/program']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /cannot run/);
  });

  it('await: returns when the name appears; exit 3 on timeout', async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'await.db')}`];
    const t0 = Date.now();
    const to = sb.run(['await', 'later', '--timeout', '300ms', ...b]);
    assert.equal(to.code, 3);
    assert.match(to.stderr, /not registered within 300ms/);
    assert.ok(Date.now() - t0 >= 300);
    const waiting = sb.start(['await', 'later', '--timeout', '30s', '--json', ...b]);
    const p = await spawnSleeper();
    assert.equal(sb.run(['register', 'later', '--pid', String(p.pid), ...b]).code, 0);
    const done = await waiting.done;
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.json<{ pid: number }>().pid, p.pid);
  });

  it('signal: sends to the named local process; cleanup sweeps the dead', async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'signal.db')}`];
    const p = await spawnSleeper();
    const q = await spawnSleeper();
    sb.run(['register', 'victim', '--pid', String(p.pid), ...b]);
    sb.run(['register', 'bystander', '--pid', String(q.pid), ...b]);
    sb.run(['register', 'far', '--pid', '123', '--node', 'other-host', ...b]);
    const far = sb.run(['signal', 'far', ...b]);
    assert.equal(far.code, 2);
    assert.match(far.stderr, /on node other-host/);
    const r = sb.run(['signal', 'victim', 'KILL', ...b]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => !pidExists(p.pid), 10_000, 'the victim to die');
    await p.kill();
    const c = sb.run(['cleanup', '--json', ...b]).json<{ removed: number; checked: number }>();
    assert.equal(c.removed, 1);
    assert.equal(sb.run(['count', ...b]).stdout.trim(), '2', 'bystander and the other node\'s entry');
    assert.equal(sb.run(['lookup', 'far', '--field', 'node', ...b]).stdout.trim(), 'other-host', 'other nodes are left to their node');
  });

  it('dump and restore round-trip; a malformed dump writes nothing', async () => {
    const p = await spawnSleeper();
    const src = ['-b', `sqlite:${join(sb.dir, 'dump-src.db')}`];
    const dst = ['-b', `sqlite:${join(sb.dir, 'dump-dst.db')}`];
    for (const [ns, k] of [['a', 'x'], ['a', 'y'], ['b', 'z/with slash']]) sb.run(['register', k, '--pid', String(p.pid), '-n', ns, '--meta', `k=${k}`, ...src]);
    const file = join(sb.dir, 'dump.ndjson');
    const d = sb.run(['dump', '-o', file, '--json', ...src]);
    assert.equal(d.code, 0, d.stderr);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const header = JSON.parse(lines[0]);
    assert.equal(header.procreg, 'dump');
    assert.equal(header.count, 3);
    assert.deepEqual(lines.slice(1).map((l) => JSON.parse(l).key), ['x', 'y', 'z/with slash'], 'sorted by namespace then key');
    // stdout dump is the same data
    assert.equal(sb.run(['dump', ...src]).stdout.split('\n').slice(1).join('\n'), lines.slice(1).join('\n') + '\n');

    const r = sb.run(['restore', file, '--json', ...dst]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<{ restored: number }>().restored, 3);
    const again = join(sb.dir, 'dump2.ndjson');
    sb.run(['dump', '-o', again, ...dst]);
    assert.equal(JSON.parse(readFileSync(again, 'utf8').split('\n')[0]).digest, header.digest, 'same digest after the round trip');

    // A bad line in the middle: exit 2, line number, nothing restored.
    const bad = join(sb.dir, 'bad.ndjson');
    writeFileSync(bad, [lines[0], lines[1], '{"namespace":"a","key":"q","pid":"NaN"', lines[2]].join('\n'));
    const empty = ['-b', `sqlite:${join(sb.dir, 'dump-empty.db')}`];
    const rb = sb.run(['restore', bad, ...empty]);
    assert.equal(rb.code, 2);
    assert.match(rb.stderr, /line 3: not valid JSON/);
    assert.deepEqual(sb.run(['list', '-A', '--json', ...empty]).json<{ items: unknown[] }>().items, []);
    // A truncated dump (count mismatch) is refused too.
    const trunc = join(sb.dir, 'trunc.ndjson');
    writeFileSync(trunc, lines.slice(0, 3).join('\n'));
    const rt = sb.run(['restore', trunc, ...empty]);
    assert.equal(rt.code, 2);
    assert.match(rt.stderr, /truncated/);
    assert.deepEqual(sb.run(['list', '-A', '--json', ...empty]).json<{ items: unknown[] }>().items, []);
    // Not a dump at all.
    const rn = sb.run(['restore', '/etc/hostname', ...empty]);
    assert.equal(rn.code, 2);
    // replace without --yes and without a TTY is refused, with nothing changed
    const rr = sb.run(['restore', file, '--mode', 'replace', ...dst]);
    assert.equal(rr.code, 2);
    assert.match(rr.stderr, /--yes/);
    sb.run(['register', 'extra', '--pid', String(p.pid), ...dst]);
    const ok = sb.run(['restore', file, '--mode', 'replace', '--yes', '--json', ...dst]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(sb.run(['lookup', 'extra', ...dst]).code, 3, 'replace leaves exactly the dump');
  });

  it('backend selection: flag, profile, env, config default', async () => {
    const p = await spawnSleeper();
    const cfgDir = join(sb.dir, 'proj');
    mkdirSync(join(cfgDir, 'deep', 'er'), { recursive: true });
    writeFileSync(
      join(cfgDir, 'registry.config.json'),
      JSON.stringify({ default: 'dev', profiles: { dev: { backend: 'sqlite:./dev.db' }, other: { backend: 'sqlite:./other.db' } } }),
    );
    const cwd = join(cfgDir, 'deep', 'er');
    const reg = sb.run(['register', 'cfg', '--pid', String(p.pid)], { cwd });
    assert.equal(reg.code, 0, reg.stderr);
    assert.ok(existsSync(join(cfgDir, 'dev.db')), 'the default profile, relative to the config file');
    assert.equal(sb.run(['lookup', 'cfg'], { cwd }).code, 0);
    assert.equal(sb.run(['lookup', 'cfg', '--profile', 'other'], { cwd }).code, 3);
    assert.equal(sb.run(['lookup', 'cfg'], { cwd, env: { REGISTRY_PROFILE: 'other' } }).code, 3);
    assert.equal(sb.run(['lookup', 'cfg'], { cwd, env: { REGISTRY_BACKEND: 'memory:' } }).code, 3);
    const which = sb.run(['backends', '--json', '--profile', 'other'], { cwd }).json<{ current: { backend: string; source: string } }>();
    assert.match(which.current.backend, /other\.db$/);
    assert.match(which.current.source, /profile other/);
    const unknown = sb.run(['lookup', 'cfg', '--profile', 'nope'], { cwd });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no profile "nope".*known profiles are dev, other/);
    writeFileSync(join(cfgDir, 'registry.config.json'), '{ broken');
    const broken = sb.run(['lookup', 'cfg'], { cwd });
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /not valid JSON/);
  });

  it('backends lists every scheme', () => {
    const r = sb.run(['backends', '--json']).json<{ schemes: Array<{ scheme: string }> }>();
    assert.deepEqual(r.schemes.map((s) => s.scheme), ['memory', 'sqlite', 'http', 'https', 'etcd', 'hybrid', 'legacy']);
  });
});
