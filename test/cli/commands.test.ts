/**
 * The `registry` CLI end to end: the real binary, the SQLite default in a temporary XDG folder,
 * real processes. Exit codes are those of design §4.
 */
import { expect } from 'chai';
import { present } from '../support/expect.js';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { killAllSleepers, spawnSleeper, waitFor } from '../support/processes.js';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';
import { pidExists } from '../../src/registry/liveness.js';

let sb: Sandbox;

describe('registry CLI: the essentials', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('register, lookup, list, count, unregister on the SQLite default', async () => {
    const p = await spawnSleeper();
    const r = sb.run(['register', 'web-1', '--pid', String(p.pid), '--meta', 'role=web', '--meta', 'port=8080']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/registered web-1 → pid \d+/);
    expect(
      existsSync(join(sb.env.XDG_DATA_HOME!, 'registry', 'registry.db')),
      'the default database is created under XDG_DATA_HOME',
    ).to.be.ok;

    const lk = sb.run(['lookup', 'web-1', '--json']);
    expect(lk.code, lk.stderr).to.equal(0);
    const e = lk.json<{ pid: number; meta: Record<string, unknown>; namespace: string }>();
    expect(e.pid).to.equal(p.pid);
    expect(e.meta, 'numbers stay numbers').to.deep.equal({ role: 'web', port: 8080 });
    expect(e.namespace).to.equal('default');
    expect(sb.run(['lookup', 'web-1', '--field', 'pid']).stdout.trim()).to.equal(String(p.pid));

    const table = sb.run(['list']);
    expect(table.code).to.equal(0);
    expect(table.stdout, 'piped: plain columns, a header line, one line per row').to.match(
      /^NAMESPACE {3}KEY +PID {3}NODE +META +AGE\ndefault {5}web-1 +\d+ {3}\S+ +role=web,port=8080 +\d+s\n$/,
    );
    expect(table.stdout, 'no colour codes when not a TTY').to.not.match(/\x1b\[/);

    expect(sb.run(['count']).stdout.trim()).to.equal('1');
    const un = sb.run(['unregister', 'web-1', '--json']);
    expect(un.json()).to.deep.equal({ namespace: 'default', key: 'web-1', removed: true });
    expect(sb.run(['unregister', 'web-1', '--json']).json<{ removed: boolean }>().removed, 'idempotent').to.equal(
      false,
    );
    expect(sb.run(['lookup', 'web-1']).code).to.equal(3);
  });

  it('the fast path and oclif print the same lookup', async () => {
    const p = await spawnSleeper();
    expect(sb.run(['register', 'same', '--pid', String(p.pid), '--meta-json', '{"b":[1,2],"a":"x"}']).code).to.equal(0);
    for (const args of [
      ['lookup', 'same'],
      ['lookup', 'same', '--json'],
      ['lookup', 'same', '--field', 'node'],
      ['lookup', 'nope', '--json'],
      ['lookup', 'nope'],
    ]) {
      const fast = sb.run(args);
      const slow = sb.run(args, { env: { REGISTRY_NO_FASTPATH: '1' } });
      expect(fast.code, args.join(' ')).to.equal(slow.code);
      // Ages ("0s ago") may tick between the two runs.
      const norm = (s: string) => s.replace(/\(\d+s ago\)/g, '(Ns ago)');
      expect(norm(fast.stdout), args.join(' ')).to.equal(norm(slow.stdout));
      expect(fast.stderr, args.join(' ')).to.equal(slow.stderr);
    }
  });

  it('item 6: lookup --field and meta get on an absent field exit 3 with one line, fast path and oclif alike', async () => {
    const p = await spawnSleeper();
    const b = ['-b', `sqlite:${join(sb.dir, 'fields.db')}`];
    expect(
      sb.run(['register', 'web-f', '--pid', String(p.pid), '--meta-json', '{"port":8080,"gone":null}', ...b]).code,
    ).to.equal(0);
    for (const env of [{}, { REGISTRY_NO_FASTPATH: '1' }]) {
      const absent = sb.run(['lookup', 'web-f', '--field', 'pd', ...b], { env });
      expect(absent.code, JSON.stringify(env)).to.equal(3);
      expect(absent.stdout, 'nothing a script could use').to.equal('');
      expect(absent.stderr.trim().split('\n')).to.have.length(1);
      expect(absent.stderr).to.match(/^registry: .*"pd".*web-f/);
      expect(sb.run(['lookup', 'web-f', '--field', 'pid', ...b], { env }).stdout.trim()).to.equal(String(p.pid));
      expect(sb.run(['lookup', 'web-f', '--field', 'port', ...b], { env }).stdout.trim()).to.equal('8080');
      const nul = sb.run(['lookup', 'web-f', '--field', 'gone', ...b], { env });
      expect(nul.code, 'a field present with value null is not absent').to.equal(0);
      expect(nul.stdout.trim()).to.equal('null');
    }
    const mg = sb.run(['meta', 'get', 'web-f', 'pd', ...b]);
    expect(mg.code).to.equal(3);
    expect(mg.stdout).to.equal('');
    expect(mg.stderr.trim().split('\n')).to.have.length(1);
    expect(mg.stderr).to.match(/^registry: .*"pd".*web-f/);
    expect(sb.run(['meta', 'get', 'web-f', 'port', ...b]).stdout.trim()).to.equal('8080');
  });

  it('conflict: exit 4 and the holder, in JSON too', async () => {
    const [a, b] = [await spawnSleeper(), await spawnSleeper()];
    expect(sb.run(['register', 'db', '--pid', String(a.pid), '-n', 'conf']).code).to.equal(0);
    const r = sb.run(['register', 'db', '--pid', String(b.pid), '-n', 'conf']);
    expect(r.code).to.equal(4);
    expect(r.stderr).to.match(/held by pid \d+/);
    expect(r.stderr.trim().split('\n').length, 'one line').to.equal(1);
    const j = sb.run(['register', 'db', '--pid', String(b.pid), '-n', 'conf', '--json']);
    expect(j.code).to.equal(4);
    const err = j.json<{ error: { code: string; holder: { pid: number }; exitCode: number } }>().error;
    expect(err.code).to.equal('ALREADY_REGISTERED');
    expect(err.holder.pid).to.equal(a.pid);
    expect(err.exitCode).to.equal(4);
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
      [
        ['register', 'k', '--pid', String(p.pid), '--meta-json', JSON.stringify({ x: 'y'.repeat(70_000) })],
        /65536-byte limit/,
      ],
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
      expect(r.code, `${args.join(' ')} → ${r.code}: ${r.stderr}`).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(re);
      expect(r.stderr, `no stack trace: ${r.stderr}`).to.not.match(/\n\s+at /);
    }
    const left = sb.run(['list', '--json', '-b', `sqlite:${join(sb.dir, 'bad-input.db')}`]);
    expect(left.json<{ items: unknown[] }>().items, 'nothing was written').to.deep.equal([]);
  });

  it('a dead pid cannot be registered (exit 2) and a dead holder is never returned', async () => {
    const p = await spawnSleeper();
    expect(sb.run(['register', 'ghost', '--pid', String(p.pid)]).code).to.equal(0);
    await p.kill();
    expect(sb.run(['lookup', 'ghost']).code).to.equal(3);
    const r = sb.run(['register', 'ghost2', '--pid', String(p.pid)]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/not a running process/);
  });

  it('corrupt, foreign and unreachable database files', () => {
    const corrupt = join(sb.dir, 'corrupt.db');
    writeFileSync(
      corrupt,
      'this is not a database, just some text that is long enough to look like a header'.repeat(20),
    );
    const r1 = sb.run(['lookup', 'k', '-b', `sqlite:${corrupt}`]);
    expect(r1.code, r1.stderr).to.equal(2);
    expect(r1.stderr).to.match(/not a usable SQLite database/);
    expect(readFileSync(corrupt, 'utf8').startsWith('this is not a database'), 'the file is left as it was').to.be.ok;

    const notDir = join(sb.dir, 'plain-file');
    writeFileSync(notDir, 'x');
    // A read creates nothing, so it finds nothing; a write cannot make the folder.
    const r2 = sb.run(['lookup', 'k', '-b', `sqlite:${notDir}/sub/registry.db`]);
    expect(r2.code, r2.stderr).to.equal(6);
    expect(r2.stderr).to.match(/no registry at .*plain-file\/sub\/registry\.db/);
    const w2 = sb.run(['register', 'k', '--pid', String(process.pid), '-b', `sqlite:${notDir}/sub/registry.db`]);
    expect(w2.code, w2.stderr).to.equal(6);
    expect(w2.stderr).to.match(/cannot create the folder .*plain-file\/sub/);

    const dir = join(sb.dir, 'a-dir.db');
    mkdirSync(dir, { recursive: true });
    const r3 = sb.run(['lookup', 'k', '-b', `sqlite:${dir}`]);
    expect(r3.code).to.equal(2);
    expect(r3.stderr).to.match(/is a directory/);
  });

  it('list: --where, --limit with a next cursor, --after, --all-namespaces', async () => {
    const p = await spawnSleeper();
    const b = ['-b', `sqlite:${join(sb.dir, 'list.db')}`];
    for (let i = 0; i < 7; i++) {
      expect(
        sb.run([
          'register',
          `w${i}`,
          '--pid',
          String(p.pid),
          '--meta',
          `role=${i % 2 ? 'odd' : 'even'}`,
          '--meta',
          'tags=["x","y"]',
          ...b,
        ]).code,
      ).to.equal(0);
    }
    expect(sb.run(['register', 'other', '--pid', String(p.pid), '-n', 'second', ...b]).code).to.equal(0);
    const odd = sb.run(['list', '--where', 'role=odd', '--json', ...b]).json<{ items: Array<{ key: string }> }>();
    expect(odd.items.map((e) => e.key)).to.deep.equal(['w1', 'w3', 'w5']);
    expect(
      sb.run(['list', '--where', 'tags=y', '--where', 'role=even', '--json', ...b]).json<{ items: unknown[] }>().items
        .length,
    ).to.equal(4);
    const page1 = sb
      .run(['list', '--limit', '3', '--json', ...b])
      .json<{ items: Array<{ key: string }>; next: string }>();
    expect(page1.items.map((e) => e.key)).to.deep.equal(['w0', 'w1', 'w2']);
    expect(page1.next).to.equal('w2');
    const page2 = sb
      .run(['list', '--limit', '10', '--after', page1.next, '--json', ...b])
      .json<{ items: Array<{ key: string }>; next?: string }>();
    expect(page2.items.map((e) => e.key)).to.deep.equal(['w3', 'w4', 'w5', 'w6']);
    expect(page2.next).to.equal(undefined);
    const all = sb.run(['list', '-A', ...b]);
    expect(all.stdout).to.match(/NAMESPACE/);
    expect(all.stdout).to.match(/second/);
    const counts = sb
      .run(['count', '-A', '--json', ...b])
      .json<{ namespaces: Record<string, number>; total: number }>();
    expect(counts).to.deep.equal({ namespaces: { default: 7, second: 1 }, total: 8 });
  });

  it('meta get / set (replace, --merge)', async () => {
    const p = await spawnSleeper();
    const b = ['-b', `sqlite:${join(sb.dir, 'meta.db')}`];
    sb.run(['register', 'svc', '--pid', String(p.pid), '--meta-json', '{"a":1,"b":{"c":2}}', ...b]);
    expect(JSON.parse(sb.run(['meta', 'get', 'svc', ...b]).stdout)).to.deep.equal({ a: 1, b: { c: 2 } });
    expect(sb.run(['meta', 'get', 'svc', 'a', ...b]).stdout.trim()).to.equal('1');
    const merged = sb.run(['meta', 'set', 'svc', '--merge', '--meta-json', '{"b":{"c":null,"d":3}}', '--json', ...b]);
    expect(merged.json<{ meta: unknown }>().meta).to.deep.equal({ a: 1, b: { d: 3 } });
    const replaced = sb.run(['meta', 'set', 'svc', '--meta', 'only=yes', '--json', ...b]);
    expect(replaced.json<{ meta: unknown }>().meta).to.deep.equal({ only: 'yes' });
    expect(sb.run(['meta', 'set', 'absent', '--meta', 'x=1', ...b]).code).to.equal(3);
    expect(sb.run(['meta', 'get', 'absent', ...b]).code).to.equal(3);
  });

  it("run: registered for the child's lifetime, exit code passed through, signals forwarded", async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'run.db')}`];
    // The child looks itself up through the CLI while it runs.
    const child = `const {spawnSync}=require('child_process');const r=spawnSync(process.execPath,[process.env.BIN,'lookup','job','--field','pid','-b',process.env.DB],{encoding:'utf8'});process.stdout.write('seen:'+r.stdout.trim()+':'+process.pid+'\\n');process.exit(7)`;
    const r = sb.run(['run', 'job', '--meta', 'kind=batch', ...b, '--', process.execPath, '-e', child], {
      env: { BIN, DB: `sqlite:${join(sb.dir, 'run.db')}` },
    });
    expect(r.code, r.stderr).to.equal(7);
    const m = /seen:(\d+):(\d+)/.exec(r.stdout);
    present(m, r.stdout);
    expect(m[1], 'while it runs, the name resolves to the child').to.equal(m[2]);
    expect(sb.run(['lookup', 'job', ...b]).code, 'unregistered after exit').to.equal(3);

    // SIGTERM to `registry run` reaches the child: exit 128+15.
    const started = sb.start(['run', 'longjob', ...b, '--', process.execPath, '-e', 'setTimeout(()=>{},60000)']);
    let childPid = 0;
    await waitFor(
      () => {
        const l = sb.run(['lookup', 'longjob', '--field', 'pid', ...b]);
        childPid = Number(l.stdout.trim());
        return l.code === 0;
      },
      20_000,
      'longjob to register',
    );
    started.child.kill('SIGTERM');
    const done = await started.done;
    expect(done.code).to.equal(143);
    await waitFor(() => !pidExists(childPid), 10_000, 'the child to exit');
    expect(sb.run(['lookup', 'longjob', ...b]).code).to.equal(3);

    const missing = sb.run(['run', 'x', ...b, '--', '/no/such/program']);
    expect(missing.code).to.equal(127);
    expect(missing.stderr).to.match(/cannot run/);
  });

  it('await: returns when the name appears; exit 3 on timeout', async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'await.db')}`];
    const t0 = Date.now();
    const to = sb.run(['await', 'later', '--timeout', '300ms', ...b]);
    expect(to.code).to.equal(3);
    expect(to.stderr).to.match(/not registered within 300ms/);
    expect(Date.now() - t0 >= 300).to.be.ok;
    const waiting = sb.start(['await', 'later', '--timeout', '30s', '--json', ...b]);
    const p = await spawnSleeper();
    expect(sb.run(['register', 'later', '--pid', String(p.pid), ...b]).code).to.equal(0);
    const done = await waiting.done;
    expect(done.code, done.stderr).to.equal(0);
    expect(done.json<{ pid: number }>().pid).to.equal(p.pid);
  });

  it('signal: sends to the named local process; cleanup sweeps the dead', async () => {
    const b = ['-b', `sqlite:${join(sb.dir, 'signal.db')}`];
    const p = await spawnSleeper();
    const q = await spawnSleeper();
    sb.run(['register', 'victim', '--pid', String(p.pid), ...b]);
    sb.run(['register', 'bystander', '--pid', String(q.pid), ...b]);
    sb.run(['register', 'far', '--pid', '123', '--node', 'other-host', ...b]);
    const far = sb.run(['signal', 'far', ...b]);
    expect(far.code).to.equal(2);
    expect(far.stderr).to.match(/on node other-host/);
    const r = sb.run(['signal', 'victim', 'KILL', ...b]);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(() => !pidExists(p.pid), 10_000, 'the victim to die');
    await p.kill();
    const c = sb.run(['cleanup', '--json', ...b]).json<{ removed: number; checked: number }>();
    expect(c.removed).to.equal(1);
    expect(sb.run(['count', ...b]).stdout.trim(), "bystander and the other node's entry").to.equal('2');
    expect(
      sb.run(['lookup', 'far', '--field', 'node', ...b]).stdout.trim(),
      'other nodes are left to their node',
    ).to.equal('other-host');
  });

  it('dump and restore round-trip; a malformed dump writes nothing', async () => {
    const p = await spawnSleeper();
    const src = ['-b', `sqlite:${join(sb.dir, 'dump-src.db')}`];
    const dst = ['-b', `sqlite:${join(sb.dir, 'dump-dst.db')}`];
    for (const [ns, k] of [
      ['a', 'x'],
      ['a', 'y'],
      ['b', 'z/with slash'],
    ] as const)
      sb.run(['register', k, '--pid', String(p.pid), '-n', ns, '--meta', `k=${k}`, ...src]);
    const file = join(sb.dir, 'dump.ndjson');
    const d = sb.run(['dump', '-o', file, '--json', ...src]);
    expect(d.code, d.stderr).to.equal(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const [headerLine] = lines;
    present(headerLine, 'the dump has a header line');
    const header = JSON.parse(headerLine);
    expect(header.procreg).to.equal('dump');
    expect(header.count).to.equal(3);
    expect(
      lines.slice(1).map((l) => JSON.parse(l).key),
      'sorted by namespace then key',
    ).to.deep.equal(['x', 'y', 'z/with slash']);
    // stdout dump is the same data
    expect(
      sb
        .run(['dump', ...src])
        .stdout.split('\n')
        .slice(1)
        .join('\n'),
    ).to.equal(lines.slice(1).join('\n') + '\n');

    const r = sb.run(['restore', file, '--json', ...dst]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<{ restored: number }>().restored).to.equal(3);
    const again = join(sb.dir, 'dump2.ndjson');
    sb.run(['dump', '-o', again, ...dst]);
    const [againHeader] = readFileSync(again, 'utf8').split('\n');
    present(againHeader, 'the second dump has a header line');
    expect(JSON.parse(againHeader).digest, 'same digest after the round trip').to.equal(header.digest);

    // A bad line in the middle: exit 2, line number, nothing restored.
    const bad = join(sb.dir, 'bad.ndjson');
    writeFileSync(bad, [lines[0], lines[1], '{"namespace":"a","key":"q","pid":"NaN"', lines[2]].join('\n'));
    const empty = ['-b', `sqlite:${join(sb.dir, 'dump-empty.db')}`];
    const rb = sb.run(['restore', bad, ...empty]);
    expect(rb.code).to.equal(2);
    expect(rb.stderr).to.match(/line 3: not valid JSON/);
    expect(sb.run(['list', '-A', '--json', ...empty]).json<{ items: unknown[] }>().items).to.deep.equal([]);
    // A truncated dump (count mismatch) is refused too.
    const trunc = join(sb.dir, 'trunc.ndjson');
    writeFileSync(trunc, lines.slice(0, 3).join('\n'));
    const rt = sb.run(['restore', trunc, ...empty]);
    expect(rt.code).to.equal(2);
    expect(rt.stderr).to.match(/truncated/);
    expect(sb.run(['list', '-A', '--json', ...empty]).json<{ items: unknown[] }>().items).to.deep.equal([]);
    // Not a dump at all.
    const rn = sb.run(['restore', '/etc/hostname', ...empty]);
    expect(rn.code).to.equal(2);
    // replace without --yes and without a TTY is refused, with nothing changed
    const rr = sb.run(['restore', file, '--mode', 'replace', ...dst]);
    expect(rr.code).to.equal(2);
    expect(rr.stderr).to.match(/--yes/);
    sb.run(['register', 'extra', '--pid', String(p.pid), ...dst]);
    const ok = sb.run(['restore', file, '--mode', 'replace', '--yes', '--json', ...dst]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(sb.run(['lookup', 'extra', ...dst]).code, 'replace leaves exactly the dump').to.equal(3);
  });

  it('backend selection: flag, profile, env, config default', async () => {
    const p = await spawnSleeper();
    const cfgDir = join(sb.dir, 'proj');
    mkdirSync(join(cfgDir, 'deep', 'er'), { recursive: true });
    writeFileSync(
      join(cfgDir, 'registry.config.json'),
      JSON.stringify({
        default: 'dev',
        profiles: { dev: { backend: 'sqlite:./dev.db' }, other: { backend: 'sqlite:./other.db' } },
      }),
    );
    const cwd = join(cfgDir, 'deep', 'er');
    const reg = sb.run(['register', 'cfg', '--pid', String(p.pid)], { cwd });
    expect(reg.code, reg.stderr).to.equal(0);
    expect(existsSync(join(cfgDir, 'dev.db')), 'the default profile, relative to the config file').to.be.ok;
    expect(sb.run(['lookup', 'cfg'], { cwd }).code).to.equal(0);
    // other.db does not exist: a lookup there creates nothing and says so (exit 6).
    expect(sb.run(['lookup', 'cfg', '--profile', 'other'], { cwd }).code).to.equal(6);
    expect(sb.run(['lookup', 'cfg'], { cwd, env: { REGISTRY_PROFILE: 'other' } }).code).to.equal(6);
    expect(existsSync(join(cfgDir, 'other.db'))).to.equal(false);
    expect(sb.run(['lookup', 'cfg'], { cwd, env: { REGISTRY_BACKEND: 'memory:' } }).code).to.equal(3);
    const which = sb
      .run(['backends', '--json', '--profile', 'other'], { cwd })
      .json<{ current: { backend: string; source: string } }>();
    expect(which.current.backend).to.match(/other\.db$/);
    expect(which.current.source).to.match(/profile other/);
    const unknown = sb.run(['lookup', 'cfg', '--profile', 'nope'], { cwd });
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/no profile "nope".*known profiles are dev, other/);
    writeFileSync(join(cfgDir, 'registry.config.json'), '{ broken');
    const broken = sb.run(['lookup', 'cfg'], { cwd });
    expect(broken.code).to.equal(2);
    expect(broken.stderr).to.match(/not valid JSON/);
  });

  it('backends lists every scheme', () => {
    const r = sb.run(['backends', '--json']).json<{ schemes: Array<{ scheme: string }> }>();
    expect(r.schemes.map((s) => s.scheme)).to.deep.equal([
      'memory',
      'sqlite',
      'http',
      'https',
      'etcd',
      'hybrid',
      'legacy',
    ]);
  });
});
