/** The entry's own behaviours: global flags before the command, "did you mean", version. */
import { expect } from 'chai';
import { hoistGlobalFlags, suggestCommand } from '../../src/cli/argv.js';
import { sandbox, type Sandbox } from '../support/cli.js';

describe('registry entry: global flags, suggestions, version', function () {
  this.timeout(120_000);
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(() => sb.cleanup());

  it('moves leading global flags behind the command, before a --', () => {
    expect(hoistGlobalFlags(['-b', 'memory:', 'list'])).to.deep.equal(['list', '-b', 'memory:']);
    expect(hoistGlobalFlags(['--backend=memory:', '--json', 'count', '-A'])).to.deep.equal([
      'count',
      '-A',
      '--backend=memory:',
      '--json',
    ]);
    expect(hoistGlobalFlags(['-n', 'x', 'run', 'w', '--', 'node', '-e', '0'])).to.deep.equal([
      'run',
      'w',
      '-n',
      'x',
      '--',
      'node',
      '-e',
      '0',
    ]);
    expect(hoistGlobalFlags(['list', '-b', 'memory:'])).to.deep.equal(['list', '-b', 'memory:']);
    expect(hoistGlobalFlags(['-b'])).to.deep.equal(['-b']);
  });

  it('suggests the closest command and nothing when none is close', () => {
    expect(suggestCommand('lsit', ['list', 'lookup', 'count'])).to.equal('list');
    expect(suggestCommand('nod status', ['node status', 'node switch'])).to.equal('node status');
    expect(suggestCommand('zzzzzzzz', ['list', 'lookup'])).to.equal(undefined);
  });

  it('registry -b URL list and registry --backend URL count work through the real binary', () => {
    const db = `sqlite:${sb.dir}/first.db`;
    expect(sb.run(['register', 'svc', '--pid', String(process.pid), '-b', db]).code).to.equal(0);
    const l = sb.run(['-b', db, 'list']);
    expect(l.code, l.stderr).to.equal(0);
    expect(l.stdout).to.match(/svc/);
    const c = sb.run(['--backend', db, 'count']);
    expect(c.code, c.stderr).to.equal(0);
    expect(c.stdout.trim()).to.equal('1');
    const k = sb.run(['-b', db, 'lookup', 'svc', '--field', 'pid']);
    expect(k.stdout.trim(), 'the fast path reads hoisted flags too').to.equal(String(process.pid));
  });

  it('an unknown command: one line with a suggestion, exit 2', () => {
    const r = sb.run(['lsit']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal(
      'registry: unknown command "lsit": did you mean "list"? run `registry --help` for the list of commands\n',
    );
  });

  it('registry --version and registry version print the same', () => {
    const a = sb.run(['--version']);
    const b = sb.run(['version']);
    expect(a.code).to.equal(0);
    expect(b.code).to.equal(0);
    expect(a.stdout).to.match(/^procreg\/\d+\.\d+\.\d+ /);
    expect(b.stdout).to.equal(a.stdout);
    expect(sb.run(['version', '--json']).json<{ version: string }>().version).to.match(/^\d+\.\d+\.\d+$/);
  });
});
