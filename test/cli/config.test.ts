/** `registry config view|use|set-profile|init`: profiles without hand-editing JSON. */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox, type Sandbox } from '../support/cli.js';

interface View {
  path: string | null;
  default: string | null;
  profiles: Record<string, { backend: string; backendOpts?: Record<string, unknown>; namespace?: string }>;
  effective: { backend: string; source: string };
}

describe('registry config', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let work: string;
  let cfgPath: string;
  beforeEach(() => {
    sb = sandbox();
    work = join(sb.dir, 'work');
    cfgPath = join(work, 'registry.config.json');
  });
  afterEach(() => sb.cleanup());

  it('view with no config file reports the default backend, creates nothing, exit 0', () => {
    const r = sb.run(['config', 'view', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const v = r.json<View>();
    expect(v.path).to.equal(null);
    expect(v.profiles).to.deep.equal({});
    expect(v.effective).to.deep.equal({
      backend: `sqlite:${join(sb.dir, 'data', 'registry', 'registry.db')}`,
      source: 'default',
    });
    expect(readdirSync(work)).to.deep.equal([]);
    expect(existsSync(join(sb.dir, 'data'))).to.equal(false);
    const human = sb.run(['config', 'view']);
    expect(human.code).to.equal(0);
    expect(human.stderr).to.match(/no config file .*registry config init/);
  });

  it('init points the default profile at the backend in use, so no answer changes; a second init is refused', () => {
    expect(sb.run(['register', 'before-init', '--pid', String(process.pid)]).code).to.equal(0);
    const r = sb.run(['config', 'init']);
    expect(r.code, r.stderr).to.equal(0);
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { default: string; profiles: Record<string, unknown> };
    expect(cfg).to.deep.equal({
      default: 'dev',
      profiles: { dev: { backend: `sqlite:${join(sb.dir, 'data', 'registry', 'registry.db')}` } },
    });
    const look = sb.run(['lookup', 'before-init', '--field', 'pid']);
    expect(look.code, look.stderr).to.equal(0);
    expect(look.stdout.trim()).to.equal(String(process.pid));

    const before = readFileSync(cfgPath, 'utf8');
    const again = sb.run(['config', 'init', '-b', 'memory:']);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.match(/^registry: .*registry\.config\.json already exists: .*--force/);
    expect(readFileSync(cfgPath, 'utf8')).to.equal(before);
    expect(sb.run(['config', 'init', '-b', 'memory:', '--force', '--profile-name', 'scratch']).code).to.equal(0);
    expect(JSON.parse(readFileSync(cfgPath, 'utf8'))).to.deep.equal({
      default: 'scratch',
      profiles: { scratch: { backend: 'memory:' } },
    });
  });

  it('init --global writes the user-wide file that commands in any directory then use', () => {
    const r = sb.run(['config', 'init', '--global', '-b', `sqlite:${join(sb.dir, 'global.db')}`, '--json']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json<{ path: string }>().path).to.equal(join(sb.dir, 'config', 'registry', 'config.json'));
    const v = sb.run(['config', 'view', '--json']).json<View>();
    expect(v.effective.backend).to.equal(`sqlite:${join(sb.dir, 'global.db')}`);
    expect(v.effective.source).to.match(/^profile dev \(default in /);
  });

  it('set-profile creates the file, stores a relative sqlite path relative to it, merges fields and options', () => {
    const add = sb.run([
      'config',
      'set-profile',
      'local',
      '-b',
      'sqlite:./stores/a.db',
      '--opt',
      'cleanupInterval=30000',
      '--opt',
      'label=blue',
      '-n',
      'apps',
      '--default',
    ]);
    expect(add.code, add.stderr).to.equal(0);
    expect(add.stdout).to.match(/added profile "local" \(sqlite:\.\/stores\/a\.db\), now the default,.*\(created\)/);
    let cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as View & { default: string };
    expect(cfg.profiles.local).to.deep.equal({
      backend: 'sqlite:./stores/a.db',
      backendOpts: { cleanupInterval: 30000, label: 'blue' },
      namespace: 'apps',
    });
    expect(cfg.default).to.equal('local');

    // Only the options given change; null removes one.
    expect(sb.run(['config', 'set-profile', 'local', '--opt', 'label=null', '--opt', 'x=true']).code).to.equal(0);
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as View & { default: string };
    expect(cfg.profiles.local).to.deep.equal({
      backend: 'sqlite:./stores/a.db',
      backendOpts: { cleanupInterval: 30000, x: true },
      namespace: 'apps',
    });

    // A register through the default profile lands in stores/a.db beside the config, namespace apps.
    expect(sb.run(['register', 'svc', '--pid', String(process.pid)]).code).to.equal(0);
    expect(existsSync(join(work, 'stores', 'a.db'))).to.equal(true);
    const listed = sb.run(['list', '-b', `sqlite:${join(work, 'stores', 'a.db')}`, '-n', 'apps', '--json']);
    expect(listed.json<{ items: Array<{ key: string }> }>().items.map((e) => e.key)).to.deep.equal(['svc']);

    // The same relative path given from a subdirectory means that subdirectory's file.
    const sub = join(work, 'sub');
    expect(sb.run(['config', 'set-profile', 'sub', '-b', 'sqlite:b.db'], { cwd: work }).code).to.equal(0);
    writeFileSync(join(work, 'marker'), '');
    expect(sb.run(['config', 'set-profile', 'deeper', '-b', 'sqlite:../c.db'], { cwd: work }).code).to.equal(0);
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as View & { default: string };
    expect(cfg.profiles.sub?.backend).to.equal('sqlite:./b.db');
    expect(cfg.profiles.deeper?.backend).to.equal(`sqlite:${join(sb.dir, 'c.db')}`);
    expect(existsSync(sub)).to.equal(false);
  });

  it('use switches the default profile, and commands follow it', () => {
    expect(sb.run(['config', 'set-profile', 'a', '-b', 'sqlite:./a.db', '--default']).code).to.equal(0);
    expect(sb.run(['config', 'set-profile', 'b', '-b', 'sqlite:./b.db']).code).to.equal(0);
    expect(sb.run(['register', 'in-a', '--pid', String(process.pid)]).code).to.equal(0);
    const use = sb.run(['config', 'use', 'b', '--json']);
    expect(use.code, use.stderr).to.equal(0);
    expect(use.json()).to.deep.include({ default: 'b', previous: 'a', backend: 'sqlite:./b.db' });
    expect(sb.run(['lookup', 'in-a']).code).to.equal(6); // b.db does not exist yet: reads never create it
    expect(existsSync(join(work, 'b.db'))).to.equal(false);
    expect(sb.run(['register', 'in-b', '--pid', String(process.pid)]).code).to.equal(0);
    expect(sb.run(['lookup', 'in-b']).code).to.equal(0);
    expect(sb.run(['lookup', 'in-a']).code).to.equal(3);
    expect(sb.run(['config', 'use', 'a']).code).to.equal(0);
    expect(sb.run(['lookup', 'in-a']).code).to.equal(0);
    const v = sb.run(['config', 'view']);
    expect(v.stdout).to.match(/^\*\s+a\s+sqlite:\.\/a\.db\s/m);
    expect(v.stdout.split('\n')[0]).to.match(/^CURRENT\s+NAME\s+BACKEND/); // piped: the table alone on stdout
    expect(v.stderr).to.match(/^config: .*registry\.config\.json$/m);
  });

  it('bad input: a clear one-line error, exit 2, and the file is left byte for byte', () => {
    expect(sb.run(['config', 'use', 'x']).stderr).to.match(/^registry: no config file at .*config init/);
    expect(sb.run(['config', 'set-profile', 'a', '-b', 'memory:']).code).to.equal(0);
    const before = readFileSync(cfgPath, 'utf8');
    const cases: Array<[string[], RegExp]> = [
      [['config', 'use', 'nope'], /^registry: no profile "nope" in .*: known profiles are a; add one with/],
      [['config', 'set-profile', 'bad/name', '-b', 'memory:'], /^registry: invalid profile name "bad\/name"/],
      [['config', 'set-profile', 'fresh'], /^registry: profile "fresh" is new: give its backend/],
      [['config', 'set-profile', 'p', '-b', 'foo:bar'], /^registry: unknown backend scheme "foo:"/],
      [['config', 'set-profile', 'a', '--opt', 'novalue'], /^registry: invalid --opt "novalue": use --opt key=value/],
      [['config', 'set-profile', 'a', '--opt', '__proto__={}'], /^registry: invalid --opt/],
    ];
    for (const [args, re] of cases) {
      const r = sb.run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(readFileSync(cfgPath, 'utf8'), args.join(' ')).to.equal(before);
    }
    writeFileSync(cfgPath, '{ not json');
    const broken = sb.run(['config', 'view']);
    expect(broken.code).to.equal(2);
    expect(broken.stderr).to.match(/^registry: config file .* is not valid JSON/);
  });
});
