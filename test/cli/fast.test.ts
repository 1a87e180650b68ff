/**
 * The cold-start fast path (src/cli/fast.ts, bundled as dist/fast.js) and the full oclif path answer
 * alike (issue 15 §1: one code path per command). Two sandboxes run the same sequence of commands
 * from an empty store: one through the fast path alone (dist/fast.js in a child process, which
 * exits 99 having printed nothing when it declines), the other through oclif
 * (REGISTRY_NO_FASTPATH=1); exit codes, stdout and stderr must match. The fast path must take every
 * case not marked as declined, and decline the marked ones (oclif then answers, through bin/run.js).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAST_COMMAND_IDS, fastCommand } from '../../src/cli/fast-ids.js';
import { parseFast, type FastFlags } from '../../src/cli/fast-parse.js';
import type { FastSpec } from '../../src/cli/fast.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { sandbox, type CliResult, type Sandbox } from '../support/cli.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const FAST = join(DIST, 'fast.js');
const SPEC = join(DIST, 'fast-spec.json');
const DECLINED = 99;

/** Run `registry ARGS` through the fast path only. */
function runFast(sb: Sandbox, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const taken = fastCommand(args);
  if (!taken) throw new Error(`${args.join(' ')} is not a fast-path command`);
  const script = `const [id, ...rest] = JSON.parse(process.argv[1]);
const { fast } = await import(${JSON.stringify(`file://${FAST}`)});
if (!(await fast(id, rest, ${JSON.stringify(SPEC)}))) process.exit(${DECLINED});`;
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', script, JSON.stringify([taken.id, ...taken.rest])],
    {
      env: sb.env,
      cwd: join(sb.dir, 'work'),
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What may differ between two sandboxes and two moments: folders, times, ages. */
function norm(sb: Sandbox, s: string): string {
  return s
    .split(sb.dir)
    .join('<SANDBOX>')
    .replace(/"(registeredAt|updatedAt)": \d+/g, '"$1": <T>')
    .replace(/(registeredAt|updatedAt): \d+/g, '$1: <T>')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<T>')
    .replace(/\(\d+s ago\)/g, '(Ns ago)');
}

describe('registry CLI: the fast path and oclif answer alike', function () {
  this.timeout(600_000);
  let fastSb: Sandbox;
  let slowSb: Sandbox;
  before(() => {
    fastSb = sandbox();
    slowSb = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    fastSb.cleanup();
    slowSb.cleanup();
  });

  it('register, unregister, lookup, count and meta get: same exit code, stdout and stderr, from an empty store on', async () => {
    const a = String((await spawnSleeper()).pid);
    const b = String((await spawnSleeper()).pid);
    // [args, the fast path declines (oclif answers)?]
    const cases: Array<[string[], boolean?]> = [
      [['count']], // no store yet: read-only commands do not create it (exit 6)
      [['count', '--json']],
      [['lookup', 'web-1']],
      [['lookup', 'web-1', '-o', 'yaml']],
      [['register', 'web-1', '--pid', a, '--meta', 'role=web', '--meta', 'port=8080']],
      [['register', 'web-1', '--pid', b]], // held by a live process: exit 4
      [['register', 'web-1', '--pid', a, '-m', 'role=api', '--json']], // same pid: metadata replaced
      [['register', 'web-2', '-p', b, '--meta-json', '{"q":["a","b"],"n":1}', '-o', 'yaml']],
      [['register', 'web-3']], // pid defaults to the parent (here: this test process, in both)
      [['register', 'bad', '--pid', 'abc']],
      [['register', 'bad', '--pid', '0', '--json']],
      [['register', 'bad', '--meta-json', '{nope']],
      [['register', 'bad', '--meta', 'novalue']],
      [['register', 'remote', '--pid', '4242', '--node', 'elsewhere', '-n', 'other']],
      [['register', '--pid', a, 'pidfirst', '--namespace=other', '--output=name']],
      [['lookup', 'web-1']],
      [['lookup', 'web-1', '--json']],
      [['lookup', 'web-1', '-o', 'wide']],
      [['lookup', 'web-1', '-o', 'name']],
      [['lookup', 'web-1', '--no-headers']],
      [['lookup', 'web-2', '--field', 'q']],
      [['lookup', 'web-1', '-f', 'pid', '--json']],
      [['lookup', 'web-1', '--field', 'nope']],
      [['lookup', 'remote', '-n', 'other', '-o', 'json']],
      [['lookup', 'nope', '--json']],
      [['count']],
      [['count', '--json']],
      [['count', '-A']],
      [['count', '--all-namespaces', '-o', 'yaml']],
      [['count', '-n', 'other']],
      [['unregister', 'web-2']],
      [['unregister', 'web-2', '--json']],
      [['unregister', 'remote', '-n', 'other', '-o', 'yaml']],
      [['count', '-A', '--json']],
      [['meta', 'get', 'web-1']],
      [['meta', 'get', 'web-1', 'port', '--json']],
      [['meta', 'get', 'web-1', 'nope']],
      [['meta', 'get', 'gone', '-o', 'yaml']],
      [['meta', 'get', 'remote', 'x', '-n', 'other']],
      [['meta', 'get', 'web-1', 'port', 'extra'], true],
      // Forms the fast parser leaves to oclif (src/cli/fast-parse.ts): oclif answers, through the entry.
      [['register', 'web-9', '--meta', 'a=1', 'b=2'], true],
      [['register', '--meta', 'a=1', 'web-9'], true],
      [['lookup', 'web-1', 'web-2'], true],
      [['lookup', 'web-1', '--bogus'], true],
      [['lookup', 'web-1', '-o', 'table'], true],
      [['count', '--help'], true],
      [['unregister'], true],
      [['register', 'x', '--pid', a, '--pid', b], true],
      [['register', 'x', '--meta', 'a=1', '--meta-json', '{}'], true],
      [['lookup', 'web-1', '-b', 'memory:'], true], // not the SQLite store
      [['count', '--profile', 'missing'], true], // a config error is reported from oclif's place
    ];
    for (const [args, declines] of cases) {
      const what = args.join(' ');
      let fast: Pick<CliResult, 'code' | 'stdout' | 'stderr'> = runFast(fastSb, args);
      if (declines) {
        expect([fast.code, fast.stdout, fast.stderr], `${what}: the fast path declines`).to.deep.equal([
          DECLINED,
          '',
          '',
        ]);
        fast = fastSb.run(args); // bin/run.js: oclif answers
      } else expect(fast.code, `${what}: taken by the fast path (stderr: ${fast.stderr})`).to.not.equal(DECLINED);
      const slow = slowSb.run(args, { env: { REGISTRY_NO_FASTPATH: '1' } });
      expect(
        [fast.code, norm(fastSb, fast.stdout), norm(fastSb, fast.stderr)],
        `${what}\nfast: ${fast.stdout}${fast.stderr}\noclif: ${slow.stdout}${slow.stderr}`,
      ).to.deep.equal([slow.code, norm(slowSb, slow.stdout), norm(slowSb, slow.stderr)]);
    }
  });

  it('bin/run.js takes the fast path for exactly the commands of src/cli/fast-ids.ts, on oclif definitions', () => {
    const spec = JSON.parse(readFileSync(SPEC, 'utf8')) as FastSpec;
    expect(Object.keys(spec).sort()).to.deep.equal([...FAST_COMMAND_IDS].sort());
    const manifest = JSON.parse(readFileSync(join(DIST, '..', 'oclif.manifest.json'), 'utf8')) as {
      commands: Record<string, { flags: Record<string, Record<string, unknown>> }>;
    };
    for (const id of FAST_COMMAND_IDS) {
      const flags = manifest.commands[id.split(' ').join(':')]?.flags ?? {};
      expect(Object.keys(spec[id]?.flags ?? {}), id).to.deep.equal(Object.keys(flags));
      for (const [name, f] of Object.entries(flags))
        for (const field of ['char', 'type', 'multiple', 'options', 'exclusive', 'default'])
          expect(spec[id]?.flags[name]?.[field as 'char'], `${id} --${name} ${field}`).to.deep.equal(f[field]);
    }
  });

  it('the fast parser reads what oclif reads and declines the rest', () => {
    const spec = (JSON.parse(readFileSync(SPEC, 'utf8')) as FastSpec).register!;
    const ok = (argv: string[], args: Record<string, string | undefined>, flags: FastFlags) =>
      expect(parseFast(spec, argv), argv.join(' ')).to.deep.equal({ args, flags });
    ok(['k'], { key: 'k' }, {});
    ok(['k', '-p', '7', '--meta', 'a=1', '-m', 'b=2'], { key: 'k' }, { pid: '7', meta: ['a=1', 'b=2'] });
    ok(
      ['--pid=7', 'k', '--json', '-n', 'x', '--output=yaml'],
      { key: 'k' },
      {
        pid: '7',
        json: true,
        namespace: 'x',
        output: 'yaml',
      },
    );
    ok(['k', '--meta-json', '{"a":1}'], { key: 'k' }, { 'meta-json': '{"a":1}' });
    for (const argv of [
      [],
      ['k', 'l'],
      ['--help'],
      ['-h'],
      ['k', '--'],
      ['k', '-p7'],
      ['k', '-p=7'],
      ['k', '--pid'],
      ['k', '--pid', '-7'],
      ['k', '--pid', '1', '--pid', '2'],
      ['k', '--json', '--json'],
      ['k', '--json=true'],
      ['k', '-o', 'table'],
      ['k', '--meta', 'a=1', 'b=2'],
      ['--meta', 'a=1', 'k'],
      ['k', '--meta', 'a=1', '--meta-json', '{}'],
      ['k', '--no-json'],
      ['k', '-'],
    ])
      expect(parseFast(spec, argv), argv.join(' ')).to.equal(undefined);
  });
});
