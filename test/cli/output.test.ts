/**
 * Issue 15 §2, output that scripts and fits: piped tables are plain aligned columns (kubectl
 * style), `-o json|yaml|wide|name`, `--no-headers`, tables fitted to a real terminal (node-pty),
 * human figures, and the small lies fixed. The real binary throughout; a pty for the TTY case.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { load as loadYaml } from 'js-yaml';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import type * as NodePty from 'node-pty';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { cli, fixture } from '../migrations/support.js';
import {
  age,
  fieldTable,
  itemLines,
  metaCell,
  renderTable,
  toYaml,
  truncate,
  type TableModel,
  visibleWidth,
} from '../../src/cli/output.js';
import { fieldRows, fmtField, fmtMs, label } from '../../src/cli/health.js';
import { compactNote } from '../../src/migrations/phases/optimize.js';
import { hoistGlobalFlags } from '../../src/cli/argv.js';

const require = createRequire(import.meta.url);
const pty = require('node-pty') as typeof NodePty;

/** Run `registry ARGS` in a real pseudo-terminal `cols` wide; its screen output, escapes stripped. */
function inPty(
  sb: Sandbox,
  args: string[],
  cols: number,
  extra: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const env: Record<string, string> = { ...extra };
  for (const [k, v] of Object.entries(sb.env)) if (v !== undefined && k !== 'NO_COLOR') env[k] ??= v;
  const p = pty.spawn(process.execPath, [BIN, ...args], {
    name: 'xterm-256color',
    cols,
    rows: 50,
    cwd: join(sb.dir, 'work'),
    env,
  });
  let out = '';
  p.onData((d) => (out += d));
  return new Promise((resolve) =>
    p.onExit((e) => resolve({ code: e.exitCode, out: stripVTControlCharacters(out).replace(/\r/g, '') })),
  );
}

const lines = (s: string) => s.replace(/\n$/, '').split('\n');
const LONG = 'a very long description of this web worker that goes on and on past any terminal';

describe('output: the table model', () => {
  const model: TableModel = {
    columns: [
      { header: 'NAME' },
      { header: 'N', right: true },
      { header: 'NOTE', flex: true },
      { header: 'X', wide: true },
    ],
    rows: [
      ['a', '1', 'short', 'x1'],
      ['bb', '100', LONG, ''],
    ],
    names: ['ns/a', 'ns/bb'],
  };

  it('piped: a header, one line per row, aligned by spaces, no rules, `-` for an empty cell, no trailing blanks', () => {
    expect(renderTable(model)).to.equal(['NAME     N   NOTE', `a        1   short`, `bb     100   ${LONG}`].join('\n'));
    expect(renderTable(model, { wide: false, headers: false, name: false })).to.equal(
      ['a      1   short', `bb   100   ${LONG}`].join('\n'),
    );
  });

  it('fitted: flexible columns are cut with … so every line fits; wide shows every column; name one per line', () => {
    const fitted = renderTable(model, { width: 40, wide: false, headers: true, name: false });
    for (const l of lines(fitted)) expect(visibleWidth(l), l).to.be.at.most(40);
    expect(fitted).to.contain('…');
    expect(lines(fitted)[2]).to.equal(`bb     100   ${LONG.slice(0, 26)}…`);
    expect(renderTable(model, { wide: true, headers: true, name: false })).to.equal(
      [
        'NAME     N   NOTE' + ' '.repeat(LONG.length - 4) + '   X',
        `a        1   short${' '.repeat(LONG.length - 5)}   x1`,
        `bb     100   ${LONG}   -`,
      ].join('\n'),
    );
    expect(renderTable(model, { wide: false, headers: true, name: true })).to.equal('ns/a\nns/bb');
    expect(truncate('\x1b[32mhealthy\x1b[39m', 7), 'colour codes take no room').to.equal('\x1b[32mhealthy\x1b[39m');
    expect(truncate('healthy', 4)).to.equal('hea…');
  });

  it('field lines: `key:  value`, an empty value heads its sub-rows; values cut on a TTY only', () => {
    expect(
      fieldTable([
        ['status', 'ok'],
        ['node info', ''],
        ['  pid', '30621'],
      ]),
    ).to.equal('status:    ok\nnode info:\n  pid:     30621');
    expect(fieldTable([['k', LONG]], { width: 20, wide: false, headers: true, name: false })).to.equal(
      `k: ${LONG.slice(0, 16)}…`,
    );
    expect(
      itemLines([['wrap', ['a 1', 'b 2', 'c 3']]], { width: 14, wide: false, headers: true, name: false }),
    ).to.equal('  wrap:  a 1,\n         b 2,\n         c 3');
  });

  it('-o yaml is the JSON data: js-yaml reads back exactly what --json prints (property)', () => {
    const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
    fc.assert(
      fc.property(json, (v) => {
        expect(loadYaml(toYaml(v))).to.deep.equal(v);
      }),
      { numRuns: 500 },
    );
    expect(toYaml({ items: [{ key: 'web-1', pid: 30621, meta: { on: 'yes', n: '1' } }], next: null })).to.equal(
      [
        'items:',
        '  - key: web-1',
        '    pid: 30621',
        '    meta:',
        '      "on": "yes"',
        '      "n": "1"',
        'next: null',
      ].join('\n'),
    );
  });

  it('human figures: pids plain, durations rounded, words for camelCase, sub-rows for objects, AGE - when unknown', () => {
    expect(fmtField('pid', 30621)).to.equal('30621');
    expect(fmtField('registrations', 30621)).to.equal('30,621');
    expect(fmtMs(2.627536999999961)).to.equal('2.6 ms');
    expect(fmtMs(163.2)).to.equal('163 ms');
    expect(fmtMs(8163)).to.equal('8.2 s');
    expect(fmtMs(754_000)).to.equal('12m 34s');
    expect(label('inFlight')).to.equal('in flight');
    expect(label('switchingTo')).to.equal('switching to');
    expect(label('checkMs')).to.equal('check time');
    expect(label('uptimeMs')).to.equal('uptime');
    expect(
      fieldRows('nodeInfo', { pid: 30621, inFlight: 2, members: [{ name: 'e1', up: true }], seen: [{ at: 1 }] }),
    ).to.deep.equal([
      ['node info', ''],
      ['  pid', '30621'],
      ['  in flight', '2'],
      ['  members', '1'],
      ['    e1', 'up=true'],
      ['  seen', '1'],
      ['    1', 'at=1'],
    ]);
    expect(age(0)).to.equal('-');
    expect(age(Number.NaN)).to.equal('-');
    expect(age(Date.now() - 3000)).to.equal('3s');
    expect(metaCell({ role: 'web', port: 8080, tags: ['a'] })).to.equal('role=web,port=8080,tags=["a"]');
  });

  it('optimize says the file grew when it grew', () => {
    expect(compactNote('/x.db', 16384, 24576)).to.equal(
      'analysed and vacuumed /x.db: 16384 → 24576 bytes (8192 bytes larger: ANALYZE statistics outweighed what VACUUM freed)',
    );
    expect(compactNote('/x.db', 24576, 16384)).to.match(/\(8192 bytes smaller\)$/);
    expect(compactNote('/x.db', 4096, 4096)).to.match(/\(same size\)$/);
  });

  it('-o/--output and --no-headers before the command are hoisted like the other global flags', () => {
    expect(hoistGlobalFlags(['-o', 'json', 'list'])).to.deep.equal(['list', '-o', 'json']);
    expect(hoistGlobalFlags(['--output=name', '--no-headers', 'list'])).to.deep.equal([
      'list',
      '--output=name',
      '--no-headers',
    ]);
  });
});

describe('output: the real CLI, piped and in a terminal', function () {
  // Dozens of real CLI processes: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  let sb: Sandbox;
  const pids: number[] = [];
  before(async () => {
    sb = sandbox();
    for (const [key, meta] of [
      ['web-1', ['--meta', 'role=web', '--meta', `desc=${LONG}`]],
      ['api', ['--meta', 'role=api']],
      ['db', []],
    ] as const) {
      const p = await spawnSleeper();
      pids.push(p.pid);
      const r = sb.run(['register', key, '--pid', String(p.pid), ...meta]);
      expect(r.code, r.stderr).to.equal(0);
    }
  });
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });

  it('piped list: plain columns, a header, no box drawing; `awk {print $2}` prints the keys', () => {
    const r = sb.run(['list']);
    expect(r.code, r.stderr).to.equal(0);
    const ls = lines(r.stdout);
    expect(ls[0]).to.match(/^NAMESPACE {3}KEY +PID {3}NODE {3}META {2,}AGE$/);
    expect(ls).to.have.length(4);
    expect(r.stdout, 'no box drawing, no colour').to.not.match(/[│─┌┐└┘├┤┬┴┼]|\x1b\[/);
    expect(ls.map((l) => l.split(/\s+/)[1])).to.deep.equal(['KEY', 'api', 'db', 'web-1']);
    expect(ls.map((l) => l.split(/\s+/)[2])).to.deep.equal(['PID', String(pids[1]), String(pids[2]), String(pids[0])]);
    expect(ls[2], 'an empty META is `-`, so the columns after it stay countable').to.match(
      /^default {5}db .* - +\d+s$/,
    );
    expect(ls[3], 'piped, nothing is cut').to.contain(`role=web,desc=${LONG}`);
    for (const l of ls) expect(l).to.equal(l.trimEnd());

    const bare = sb.run(['list', '--no-headers']);
    expect(lines(bare.stdout).map((l) => l.split(/\s+/)[1])).to.deep.equal(['api', 'db', 'web-1']);
    const noAge = (out: string) => out.replace(/ +\d+[smhd]$/gm, ' (age)'); // ages tick between runs
    expect(noAge(sb.run(['--no-headers', 'list']).stdout), 'hoisted').to.equal(noAge(bare.stdout));

    const empty = sb.run(['list', '-n', 'nothing-here']);
    expect([empty.code, empty.stdout], 'no rows: nothing on stdout').to.deep.equal([0, '']);
    expect(empty.stderr).to.equal('no live registrations\n');
  });

  it('-o name, -o wide, -o json (= --json), -o yaml, before or after the command', () => {
    expect(sb.run(['list', '-o', 'name']).stdout).to.equal('default/api\ndefault/db\ndefault/web-1\n');
    expect(sb.run(['-o', 'name', 'lookup', 'web-1']).stdout).to.equal('default/web-1\n');
    const wide = lines(sb.run(['list', '-o', 'wide']).stdout);
    expect(wide[0]).to.match(/^NAMESPACE +KEY +PID +NODE +META +AGE +REGISTERED +PID START$/);
    expect(wide[3]).to.match(/ \d{4}-\d\d-\d\dT[\d:.]+Z +\d+$/);

    const json = sb.run(['list', '--json']).json<unknown>();
    expect(sb.run(['list', '-o', 'json']).json(), '-o json is --json').to.deep.equal(json);
    expect(sb.run(['-o', 'json', 'list']).json(), 'registry -o json list').to.deep.equal(json);
    expect(sb.run(['list', '--output=json']).json()).to.deep.equal(json);
    const yaml = sb.run(['list', '-o', 'yaml']);
    expect(yaml.code, yaml.stderr).to.equal(0);
    expect(yaml.stdout).to.match(/^items:\n {2}- namespace: default\n {4}key: api\n/);
    expect(loadYaml(yaml.stdout), '-o yaml is the same data').to.deep.equal(json);
    expect(loadYaml(sb.run(['backends', '-o', 'yaml']).stdout)).to.deep.equal(sb.run(['backends', '--json']).json());

    const bad = sb.run(['list', '-o', 'tabel']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/^registry: .*tabel.*json, yaml, wide, name/);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
  });

  it('the fast lookup path answers -o json|yaml|name exactly as oclif does', () => {
    for (const args of [
      ['lookup', 'web-1', '-o', 'json'],
      ['lookup', 'web-1', '-o', 'yaml'],
      ['lookup', 'web-1', '-o', 'name'],
      ['-o', 'yaml', 'lookup', 'web-1'],
      ['lookup', 'web-1', '-o', 'wide'],
      ['lookup', 'web-1', '--no-headers'],
      ['lookup', 'nope', '-o', 'yaml'],
      ['lookup', 'web-1', '-o', 'tabel'],
    ]) {
      const fast = sb.run(args);
      const slow = sb.run(args, { env: { REGISTRY_NO_FASTPATH: '1' } });
      const norm = (s: string) => s.replace(/\(\d+[smhd] ago\)/g, '(N ago)');
      expect([fast.code, norm(fast.stdout), fast.stderr], args.join(' ')).to.deep.equal([
        slow.code,
        norm(slow.stdout),
        slow.stderr,
      ]);
    }
    expect(loadYaml(sb.run(['lookup', 'web-1', '-o', 'yaml']).stdout)).to.deep.equal(
      sb.run(['lookup', 'web-1', '--json']).json(),
    );
  });

  it('piped backends: the table alone on stdout, the current backend on stderr', () => {
    const r = sb.run(['backends']);
    const ls = lines(r.stdout);
    expect(ls[0]).to.match(/^SCHEME {3}URL +DESCRIPTION$/);
    expect(ls.map((l) => l.split(/\s+/)[0])).to.deep.equal([
      'SCHEME',
      'memory',
      'sqlite',
      'http',
      'https',
      'etcd',
      'hybrid',
      'legacy',
    ]);
    expect(r.stderr).to.match(/^current: sqlite:.*registry\.db \(from default\)\n$/);
  });

  it('on an 80-column terminal, list and backends fit the width with …; -o wide shows everything', async () => {
    const list = await inPty(sb, ['list'], 80);
    expect(list.code, list.out).to.equal(0);
    const ls = lines(list.out);
    expect(ls, list.out).to.have.length(4);
    for (const l of ls) expect(visibleWidth(l), `${l}\n${list.out}`).to.be.at.most(80);
    expect(ls[0]).to.match(/^NAMESPACE {3}KEY +PID {3}NODE {3}META +AGE$/);
    expect(ls[3], 'the long META is cut, the AGE after it kept').to.match(
      /^default {5}web-1 .*role=web,desc=a very.*… +\d+s$/,
    );
    expect(visibleWidth(ls[3] ?? ''), 'the cut row fills the line').to.equal(80);
    expect(list.out).to.not.match(/[│─┌└]/);

    const backends = await inPty(sb, ['backends'], 80);
    const bl = lines(backends.out);
    for (const l of bl) expect(visibleWidth(l), `${l}\n${backends.out}`).to.be.at.most(80);
    expect(
      bl.find((l) => l.startsWith('hybrid')),
      backends.out,
    ).to.match(/^hybrid {3}hybrid: \(backendOpts \{primary, backup\}\) {3}.+…$/);
    expect(bl.at(-1), 'on a terminal the current backend follows the table').to.match(/^current: sqlite:/);

    const wide = await inPty(sb, ['list', '-o', 'wide'], 80);
    expect(wide.out, 'nothing cut under -o wide').to.contain(`desc=${LONG}`);
    expect(wide.out).to.not.contain('…');
    expect(wide.out).to.match(/REGISTERED +PID START/);
  });

  it('on a 60-column terminal, lookup cuts a long value the same way on the fast path and through oclif', async () => {
    const fast = await inPty(sb, ['lookup', 'web-1'], 60);
    const slow = await inPty(sb, ['lookup', 'web-1'], 60, { REGISTRY_NO_FASTPATH: '1' });
    const norm = (s: string) => s.replace(/\(\d+[smhd] ago\)/g, '(N ago)');
    expect(norm(fast.out)).to.equal(norm(slow.out));
    const meta = lines(fast.out).find((l) => l.startsWith('meta:'));
    expect(meta).to.match(/^meta: {7}role=web,desc=a very long .*…$/);
    expect(visibleWidth(meta ?? '')).to.equal(60);
  });

  /** `registry health --watch EVERY --json` until `rounds` lines are out, then SIGINT: its output. */
  async function watchRounds(every: string, rounds: number) {
    const child = spawn(process.execPath, [BIN, 'health', '--watch', every, '--json'], {
      env: sb.env,
      cwd: join(sb.dir, 'work'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const deadline = Date.now() + 60_000;
    while (out.split('\n').filter(Boolean).length < rounds && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    return { code, out, err, lines: out.split('\n').filter(Boolean) };
  }

  it('health --watch takes a duration (5s, 300ms) like --timeout; 0 is refused in one line', async () => {
    const zero = sb.run(['health', '--watch', '0s']);
    expect(zero.code).to.equal(2);
    expect(zero.stderr).to.equal('registry: invalid --watch "0s": it must be above zero, e.g. 10s\n');
    const { code, out, err, lines: rounds } = await watchRounds('300ms', 2);
    expect(code, err).to.equal(0);
    expect(rounds.length, out + err).to.be.at.least(2);
    const at = rounds.map((l) => Date.parse((JSON.parse(l) as { checkedAt: string }).checkedAt));
    expect((at[1] ?? 0) - (at[0] ?? 0), 'rounds 300 ms apart, not 300 s').to.be.within(250, 10_000);
  });

  it('health --watch keeps one abort listener: many rounds print no MaxListeners warning', async () => {
    // Each round's sleep used to add an abort listener that stayed: Node warned after 11 rounds.
    const { code, out, err, lines } = await watchRounds('20ms', 20);
    expect(lines.length, out + err).to.be.at.least(20);
    expect(code, err).to.equal(0);
    expect(err, 'nothing on stderr').to.equal('');
  });

  it('cleanup --json: durationMs rounded to hundredths', () => {
    const r = sb.run(['cleanup', '--json']).json<{ durationMs: number }>();
    expect(Math.round(r.durationMs * 100) / 100).to.equal(r.durationMs);
  });
});

describe('output: migration status and reruns', function () {
  this.timeout(180_000);
  const t = tempDir('procreg-output-migrate-');
  after(() => t.cleanup());

  it('a rerun says "already done" once; status counts are lines in words, not a cell; legacy AGE is -', async () => {
    const { path } = fixture('clean', t.dir);
    const run = async (args: string[]) => {
      const r = await cli(args, { cwd: t.dir });
      expect(r.code, `registry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).to.equal(0);
      return r;
    };
    const legacy = lines((await run(['list', '-b', `legacy:${path}`])).stdout);
    expect(legacy[1], 'legacy rows have no registration time').to.match(/^default {5}api .* -$/);
    await run(['migrate', 'wrap', '--from', `legacy:${path}`, '--yes']);
    const again = await run(['migrate', 'wrap', '--from', `legacy:${path}`, '--yes']);
    expect(again.stdout).to.equal('phase wrap: already done\n');
    const st = lines((await run(['migrate', 'status'])).stdout);
    const at = st.findIndex((l) => l.startsWith('PHASE'));
    expect(st[at]).to.equal('PHASE   STATUS   STARTED                    FINISHED');
    expect(st[at + 1]).to.match(/^wrap {4}done {5}\S+Z {3}\S+Z$/);
    expect(st[at + 2]).to.equal('counts:');
    expect(st[at + 3]).to.match(
      /^ {2}wrap: {2}entries 5, effective 5, registry rows 5, backup rows 5, only in registry 0, .*, divergent 0$/,
    );
    expect(st.every((l) => l.length < 260)).to.be.ok;
  });
});
