/**
 * The light path (src/cli/lite/, bundled per command into dist/fast/) and the full oclif path answer
 * alike (issue 15 §1: one code path per command). Two sandboxes run the same sequence of command
 * lines from an empty store, side by side: one through bin/run.js as installed (the light path,
 * REGISTRY_LITE_REPORT=1 so it says when it ran), the other through oclif (REGISTRY_NO_FASTPATH=1).
 * Exit codes, stdout and stderr must match. Every case not marked `oclif` must be taken by the
 * light path, and the marked ones declined (oclif answers them, through the same entry).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';
import { fmtInt } from '../../src/cli/health.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const FAST = join(DIST, 'fast');
const LITE_MARK = /^\[lite\] ([a-z -]+)\n/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run bin/run.js in a sandbox, asynchronously ({SB} in an argument is the sandbox's folder). */
function run(sb: Sandbox, args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args.map((a) => a.split('{SB}').join(sb.dir))], {
      env: { ...sb.env, ...env },
      cwd: join(sb.dir, 'work'),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** What may differ between two sandboxes and two moments: folders, times, ages, durations. */
function norm(sb: Sandbox, s: string): string {
  return s
    .split(sb.dir)
    .join('<SB>')
    .replace(/": ?1\d{12}\b/g, '": <T>')
    .replace(/(registeredAt|updatedAt|createdAt): \d+/g, '$1: <T>')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<T>')
    .replace(/"(durationMs|checkMs|uptimeMs|processRssBytes|processHeapUsedBytes)": ?[\d.]+/g, '"$1": <N>')
    .replace(/rss [\d.]+ MiB, heap [\d.]+ MiB/g, 'rss <N> MiB, heap <N> MiB')
    .replace(/\d+(\.\d+)? ?ms\b/g, '<N> ms')
    .replace(/\(\d+s ago\)/g, '(Ns ago)')
    .replace(/\b\d+[smhd]\b/g, '<AGE>')
    .replace(/ {2,}/g, '  ');
}

/** [args, who answers ('oclif': the light path must decline), stdin]. */
type Case = [string[], 'oclif'?, string?];

describe('registry CLI: the light path and oclif answer alike', function () {
  this.timeout(900_000);
  let lite: Sandbox;
  let full: Sandbox;
  before(() => {
    lite = sandbox();
    full = sandbox();
  });
  after(async () => {
    await killAllSleepers();
    lite.cleanup();
    full.cleanup();
  });

  it('every command: same exit code, stdout and stderr, from an empty store on; the light path takes all but the marked cases', async () => {
    const a = String((await spawnSleeper()).pid);
    const b = String((await spawnSleeper()).pid);
    const cases: Case[] = [
      [['count']], // no store yet: read-only commands do not create it (exit 6)
      [['count', '--json']],
      [['list']],
      [['lookup', 'web-1']],
      [['lookup', 'web-1', '-o', 'yaml']],
      [['stats']],
      [['backends']],
      [['backends', '--json']],
      [['config', 'view']],
      [['config', 'view', '--json']],
      [['register', 'web-1', '--pid', a, '--meta', 'role=web', '--meta', 'port=8080']],
      [['register', 'web-1', '--pid', b]], // held by a live process: exit 4
      [['register', 'web-1', '--pid', a, '-m', 'role=api', '--json']], // same pid: metadata replaced
      [['register', 'web-2', '-p', b, '--meta-json', '{"q":["a","b"],"n":1}', '-o', 'yaml']],
      [['register', 'web-3']], // pid defaults to the parent (this test process, in both)
      [['register', 'bad', '--pid', 'abc']],
      [['register', 'bad', '--pid', '0', '--json']],
      [['register', 'bad', '--meta-json', '{nope']],
      [['register', 'bad', '--meta', 'novalue']],
      [['register', 'remote', '--pid', '4242', '--node', 'elsewhere', '-n', 'other']],
      [['register', '--pid', a, 'pidfirst', '--namespace=other', '--output=name']],
      [['-n', 'other', 'register', 'hoisted', '--pid', a]], // a global flag before the command
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
      [['count', '-A']],
      [['count', '--all-namespaces', '-o', 'yaml']],
      [['-n', 'other', 'count']],
      [['list']],
      [['list', '-o', 'wide']],
      [['list', '--no-headers']],
      [['list', '-o', 'name']],
      [['list', '--json']],
      [['list', '-A', '-o', 'yaml']],
      [['list', '-l', '1']],
      [['list', '--limit=2', '--after', 'web-1']],
      [['list', '--where', 'role=api']],
      [['list', '-w', 'role=api', '--explain']],
      [['meta', 'get', 'web-1']],
      [['meta', 'get', 'web-1', 'port', '--json']],
      [['meta', 'get', 'web-1', 'nope']],
      [['meta', 'get', 'gone', '-o', 'yaml']],
      [['meta', 'set', 'web-1', '--meta', 'zone=b']],
      [['meta', 'set', 'web-1', '--merge', '-m', 'rack=7', '--json']],
      [['meta', 'set', 'web-1', '--meta-json', '[1]']],
      [['stats']],
      [['stats', '--json']],
      [['health']],
      [['health', '--json']],
      [['health', '--fail-on', 'never'], 'oclif'], // not one of its options
      [['health', '--timeout', 'soon']],
      [['dump']],
      [['dump', '-o', 'dump.ndjson']],
      [['verify', 'sqlite:{SB}/data/registry/registry.db', 'sqlite:{SB}/data/registry/registry.db']],
      [['verify', 'sqlite:{SB}/data/registry/registry.db', 'sqlite:{SB}/none.db', '--json']],
      [['restore', 'dump.ndjson', '--yes']],
      [['restore', 'dump.ndjson', '--mode', 'replace', '--yes', '--json']],
      [['import', 'dump.ndjson']],
      [['import', 'missing.ndjson', '--format', 'csv']],
      [['cleanup']],
      [['cleanup', '--json']],
      [['report']],
      [['report', '--json']],
      [['await', 'web-1', '--timeout', '5s']],
      [['await', 'never', '-t', '200ms']],
      [['signal', 'nope']],
      [['signal', 'web-1', 'NOSUCHSIGNAL']],
      [['signal', 'remote', 'TERM', '-n', 'other']],
      [['run', 'job-1', 'sleep', '0.5']],
      [['run', 'job-2', '/nonexistent/cmd']],
      [['run', 'web-1', 'sleep', '0.5']], // the name is held: exit 4
      [['watch', '--since', '0', '--count', '2', '--json']],
      [['serve', '--listen', 'not-an-address']],
      [['node', 'status']],
      [['node', 'switch', '--to', 'memory:']],
      [['config', 'init']],
      [['config', 'init']], // exists: refused
      [['config', 'set-profile', 'mem', '--backend', 'memory:']],
      [['config', 'use', 'mem']],
      [['count']], // on the memory profile now
      [['config', 'use', 'nope']],
      [['config', 'use', 'dev', '--json']],
      [['config', 'view']],
      [['migrate', 'status']],
      [['migrate', 'plan', '--to', 'sqlite:{SB}/next.db']],
      [['migrate', 'wrap', '--dry-run']],
      [['migrate', 'hybrid', '--dry-run', '--to', 'sqlite:{SB}/next.db']],
      [['migrate', 'cutover', '--dry-run']],
      [['migrate', 'distribute', '--dry-run']],
      [['migrate', 'optimize', '--dry-run']],
      [['migrate', 'rollback', '--dry-run']],
      [['migrate', 'copy', '--from', 'memory:', '--to', 'sqlite:{SB}/copy.db', '--dry-run']],
      [['unregister', 'web-2']],
      [['unregister', 'web-2', '--json']],
      [['unregister', 'remote', '-n', 'other', '-o', 'yaml']],
      [['count', '-b', 'memory:']],
      [['count', '-b', 'nope:x']],
      [['count', '-b', 'http://127.0.0.1:9']],
      [['count', '--profile', 'missing']],
      // Forms the light parser leaves to oclif (src/cli/lite/parse.ts), and what has no bundle.
      [['lookup'], 'oclif'],
      [['lookup', 'web-1', 'web-2'], 'oclif'],
      [['lookup', 'web-1', '--bogus'], 'oclif'],
      [['lookup', 'web-1', '-o', 'table'], 'oclif'],
      [['count', '--help'], 'oclif'],
      [['count', '-An'], 'oclif'],
      [['count', '--json', '--json'], 'oclif'],
      [['count', '--json=true'], 'oclif'],
      [['register', 'web-9', '--meta', 'a=1', 'b=2'], 'oclif'],
      [['register', 'x', '--pid', a, '--pid', b], 'oclif'],
      [['register', 'x', '--meta', 'a=1', '--meta-json', '{}'], 'oclif'],
      [['register', 'x', '-p7'], 'oclif'],
      [['list', '--limit', '0'], 'oclif'],
      [['list', '-l', 'many'], 'oclif'],
      [['list', '-A', '--after', 'x'], 'oclif'],
      [['restore', 'dump.ndjson', '--mode', 'wipe'], 'oclif'],
      [['run', 'job-3', '--', 'sleep', '0.5'], 'oclif'],
      [['meta', 'get', 'web-1', 'port', 'extra'], 'oclif'],
      [['lsit'], 'oclif'],
      [['meta'], 'oclif'],
      [['version'], 'oclif'],
      [['--version'], 'oclif'],
    ];
    const seen = new Set<string>();
    const failures: string[] = [];
    for (const [args, who, input] of cases) {
      const what = `registry ${args.join(' ')}${input ? ` <<< ${JSON.stringify(input)}` : ''}`;
      const [l, f] = await Promise.all([
        run(lite, args, { REGISTRY_LITE_REPORT: '1' }, input),
        run(full, args, { REGISTRY_NO_FASTPATH: '1' }, input),
      ]);
      const mark = LITE_MARK.exec(l.stderr);
      if (mark?.[1]) seen.add(mark[1]);
      if (!!mark !== (who !== 'oclif'))
        failures.push(`${what}: ${who === 'oclif' ? 'not declined by' : 'not taken by'} the light path`);
      const stderr = l.stderr.replace(LITE_MARK, '');
      const got = JSON.stringify([l.code, norm(lite, l.stdout), norm(lite, stderr)]);
      const want = JSON.stringify([f.code, norm(full, f.stdout), norm(full, f.stderr)]);
      if (got !== want) failures.push(`${what}\n  light: ${got}\n  oclif: ${want}`);
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    // Every bundled command ran on the light path at least once.
    const bundled = readdirSync(FAST)
      .filter((f) => f.endsWith('.cjs'))
      .map((f) => f.slice(0, -4).split('.').join(' '));
    expect([...seen].sort()).to.deep.equal(bundled.sort());
  });

  it("fmtInt groups digits as toLocaleString('en-US') does, without loading ICU at start-up", () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.double({ noNaN: true })), (n) => {
        expect(fmtInt(n)).to.equal(Number.isInteger(n) ? n.toLocaleString('en-US') : String(n));
      }),
    );
  });

  it('the light path does not load @oclif/core', () => {
    const probe = join(lite.dir, 'probe.cjs');
    writeFileSync(
      probe,
      `process.on('exit', () => process.stderr.write('oclif loaded: ' + Object.keys(require.cache).some((k) => k.includes('@oclif/core')) + '\\n'));`,
    );
    for (const [args, env, loaded] of [
      [['count'], {}, false],
      [['list', '-A'], {}, false],
      [['count'], { REGISTRY_NO_FASTPATH: '1' }, true], // the probe sees oclif when it is loaded
      [['count', '--help'], {}, true],
    ] as const) {
      const r = lite.run([...args], { env: { ...env, NODE_OPTIONS: `--require ${probe}` } });
      expect(r.stderr, args.join(' ')).to.contain(`oclif loaded: ${loaded}`);
    }
  });

  it('each bundled class has the flags and arguments oclif reads from the same class', async () => {
    const req = createRequire(import.meta.url);
    const pick = (d: Record<string, unknown>) =>
      Object.fromEntries(
        [
          'char',
          'type',
          'multiple',
          'options',
          'default',
          'min',
          'max',
          'exclusive',
          'required',
          'allowNo',
          'env',
          'dependsOn',
        ].map((k) => [k, d[k]]),
      );
    const shape = (C: Record<string, unknown>) => {
      const defs = (o: unknown) =>
        Object.fromEntries(
          Object.entries((o ?? {}) as Record<string, Record<string, unknown>>).map(([k, d]) => [k, pick(d)]),
        );
      return {
        flags: defs(C.flags),
        baseFlags: defs(C.baseFlags),
        args: defs(C.args),
        strict: C.strict,
        enableJsonFlag: C.enableJsonFlag,
      };
    };
    const files = readdirSync(FAST).filter((f) => f.endsWith('.cjs'));
    expect(files.length).to.be.greaterThan(30);
    for (const f of files) {
      const words = f.slice(0, -4).split('.');
      const bundled = (req(join(FAST, f)) as { default: Record<string, unknown> }).default;
      const oclif = (
        (await import(join(DIST, 'src', 'commands', ...words) + '.js')) as {
          default: Record<string, unknown>;
        }
      ).default;
      expect(shape(bundled), words.join(' ')).to.deep.equal(shape(oclif));
    }
  });
});
