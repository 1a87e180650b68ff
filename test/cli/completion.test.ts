/** Shell completion: the candidates (`registry complete`) and the bash, zsh and fish scripts, in those shells. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, sandbox, type Sandbox } from '../support/cli.js';

describe('registry autocomplete: bash, zsh and fish', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let db: string;
  let binDir: string;
  const complete = (line: string, shell = 'bash') => {
    const r = sb.run(['complete', '--shell', shell, '--line', line]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    return r.stdout;
  };
  /** bash/zsh answer: the word being completed, then the candidates. */
  const candidates = (line: string) => {
    const [word, ...rest] = complete(line).split('\n');
    return { word, candidates: rest.filter((l) => l !== '') };
  };
  const shell = (sh: string, script: string) => {
    const r = spawnSync(sh, sh === 'fish' ? ['--no-config', '-c', script] : ['-c', script], {
      env: { ...sb.env, PATH: `${binDir}:${process.env.PATH}` },
      cwd: join(sb.dir, 'work'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, `${sh}: ${r.stderr}`).to.equal(0);
    return r.stdout;
  };

  before(() => {
    sb = sandbox();
    db = join(sb.dir, 'r.db');
    binDir = join(sb.dir, 'bin');
    mkdirSync(binDir);
    symlinkSync(BIN, join(binDir, 'registry'));
    for (const [key, ns] of [
      ['web-1', 'default'],
      ['web 2', 'default'],
      ['svc:a', 'default'],
      ['db', 'prod'],
    ] as const) {
      const r = sb.run(['register', key, '--pid', String(process.pid), '-n', ns, '-b', `sqlite:${db}`]);
      expect(r.code, r.stderr).to.equal(0);
    }
    writeFileSync(
      join(sb.dir, 'work', 'registry.config.json'),
      JSON.stringify({ profiles: { dev: { backend: `sqlite:${db}` }, prod: { backend: 'memory:' } } }),
    );
  });
  after(() => sb.cleanup());

  it('completes commands, topics, flags, schemes, profiles, namespaces and keys from the backend', () => {
    expect(candidates('registry li')).to.deep.equal({ word: 'li', candidates: ['list'] });
    expect(candidates('registry ').candidates).to.include.members(['list', 'lookup', 'config', 'migrate', 'meta']);
    expect(candidates('registry ').candidates).to.not.include('complete'); // hidden
    expect(candidates('registry meta ').candidates).to.deep.equal(['get', 'set']);
    expect(candidates('registry config ').candidates).to.deep.equal(['init', 'set-profile', 'use', 'view']);
    expect(candidates('registry lookup --fi').candidates).to.deep.equal(['--field']);
    expect(candidates('registry list -b ').candidates).to.include.members(['sqlite:', 'etcd:', 'http:']);
    expect(candidates('registry list --profile ').candidates).to.deep.equal(['dev', 'prod']);
    expect(candidates('registry config use ').candidates).to.deep.equal(['dev', 'prod']);
    expect(candidates(`registry lookup -b sqlite:${db} w`).candidates).to.deep.equal(["'web 2'", 'web-1']);
    expect(candidates(`registry lookup -b sqlite:${db} -n `).candidates).to.deep.equal(['default', 'prod']);
    expect(candidates(`registry lookup -b sqlite:${db} -n prod `).candidates).to.deep.equal(['db']);
    expect(candidates(`registry lookup --profile dev s`).candidates).to.deep.equal(['svc:a']);
  });

  it('global flags before the command select the backend and namespace, and complete themselves', () => {
    expect(candidates(`registry -b sqlite:${db} -n prod lookup `).candidates).to.deep.equal(['db']);
    expect(candidates(`registry -b sqlite:${db} lo`).candidates).to.deep.equal(['lookup']);
    expect(candidates('registry -b ').candidates).to.include('sqlite:');
    expect(candidates('registry --pro').candidates).to.deep.equal(['--profile']);
    expect(candidates(`registry -b sqlite:${db} -n `).candidates).to.deep.equal(['default', 'prod']);
  });

  it('never creates a store, never fails: a missing file or unreachable node has no keys', () => {
    const missing = join(sb.dir, 'nothing', 'here.db');
    expect(candidates(`registry lookup -b sqlite:${missing} w`).candidates).to.deep.equal([]);
    expect(existsSync(join(sb.dir, 'nothing'))).to.equal(false);
    const started = Date.now();
    expect(candidates('registry lookup -b http://127.0.0.1:9 w').candidates).to.deep.equal([]);
    expect(Date.now() - started).to.be.below(30_000);
    expect(candidates('registry lookup -b nonsense w').candidates).to.deep.equal([]);
    expect(readdirSync(join(sb.dir, 'work'))).to.deep.equal(['registry.config.json']);
  });

  it('bash: the script completes through COMPREPLY, including keys with a ":" that bash splits', () => {
    const out = shell(
      'bash',
      `source <(registry autocomplete bash)
try() { COMP_LINE="$1"; COMP_POINT=\${#1}; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _registry_complete; printf '%s|' "\${COMPREPLY[@]}"; echo; }
try "registry li" registry li
try "registry lookup -b sqlite:${db} w" registry lookup -b sqlite : ${db} w
try "registry lookup -b sqlite:${db} svc:" registry lookup -b sqlite : ${db} svc :
complete -p registry`,
    );
    expect(out.split('\n')).to.deep.equal([
      'list|',
      "'web 2'|web-1|",
      ':a|',
      'complete -F _registry_complete registry',
      '',
    ]);
  });

  it('zsh: the script offers the candidates to compadd, unfinished words without a suffix', () => {
    const out = shell(
      'zsh',
      `compadd() { print -r -- "compadd $*"; }
source <(registry autocomplete zsh)
BUFFER="registry li"; CURSOR=\${#BUFFER}; _registry
BUFFER="registry -b "; CURSOR=\${#BUFFER}; _registry
BUFFER="registry lookup -b sqlite:${db} -n prod "; CURSOR=\${#BUFFER}; _registry`,
    );
    expect(out.split('\n')).to.deep.equal([
      'compadd -U -Q -- list',
      'compadd -U -Q -S  -- memory: sqlite: http: https: etcd: hybrid: legacy:',
      'compadd -U -Q -- db',
      '',
    ]);
  });

  it('fish: complete -C lists the candidates', () => {
    const out = shell(
      'fish',
      `registry autocomplete fish | source
complete -C "registry lookup -b sqlite:${db} w"
complete -C "registry config use "`,
    );
    expect(out.split('\n')).to.deep.equal(['web 2', 'web-1', 'dev', 'prod', '']);
  });

  it('autocomplete names the shells it knows; an unknown one is a usage error', () => {
    const r = sb.run(['autocomplete', 'tcsh']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal(
      'registry: unsupported shell "tcsh": name one of bash, zsh, fish, e.g. registry autocomplete bash\n',
    );
    const byEnv = sb.run(['autocomplete'], { env: { SHELL: '/usr/bin/fish' } });
    expect(byEnv.code).to.equal(0);
    expect(byEnv.stdout).to.include("complete -c registry -f -a '(__registry_complete)'");
  });
});
