/**
 * The package as users get it: `npm pack` (its prepack builds and writes oclif.manifest.json), then
 * `npm i -g --prefix TMP ./procreg-*.tgz`, then the README's main job and a few more commands run
 * from the installed `TMP/bin/registry` with a fresh HOME and XDG folders — the light path
 * (dist/fast/: one bundle per command, bin/package.json) included, which a tarball without its
 * files crashed on (ERR_MODULE_NOT_FOUND).
 *
 * Dependencies come from the npm cache or registry (--prefer-offline); better-sqlite3's addon is the
 * one this checkout compiled, handed over as a local prebuild (compiling it again takes minutes).
 */
import { expect } from 'chai';
import { spawn, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSleeper, killAllSleepers } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program to its end (asynchronously, so mocha's timeout still fires). */
function run(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function ok(r: Run, what: string): Run {
  expect(r.code, `${what} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).to.equal(0);
  return r;
}

/** Command ids of the compiled commands: dist/src/commands/meta/get.js → meta:get. */
function commandIds(dir: string): string[] {
  const ids: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.js'))
        ids.push(relative(dir, join(d, e.name)).replace(/\.js$/, '').split('/').join(':'));
    }
  };
  walk(dir);
  return ids.sort();
}

describe('package: npm pack, npm i -g, the installed registry works', function () {
  this.timeout(600_000);
  const tmp = tempDir('procreg-pack-');
  const prefix = join(tmp.dir, 'prefix');
  const home = join(tmp.dir, 'home');
  const registry = join(prefix, 'bin', 'registry');
  const installed = join(prefix, 'lib', 'node_modules', 'procreg');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_STATE_HOME: join(home, 'state'),
    NO_COLOR: '1',
  };
  for (const k of ['REGISTRY_BACKEND', 'REGISTRY_PROFILE', 'REGISTRY_CONFIG', 'REGISTRY_NO_FASTPATH', 'FORCE_COLOR'])
    delete env[k];
  const reg = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run(registry, args, { env: { ...env, ...extra }, cwd: tmp.dir });
  after(async () => {
    await killAllSleepers();
    tmp.cleanup();
  });

  it('npm pack builds a tarball with the fast path and a manifest of every command', async () => {
    ok(await run('npm', ['pack', '--pack-destination', tmp.dir], { cwd: ROOT }), 'npm pack');
    expect(existsSync(join(ROOT, 'oclif.manifest.json')), 'npm run build (prepack) writes the manifest').to.equal(true);
    const tgz = readdirSync(tmp.dir).filter((f) => /^procreg-.*\.tgz$/.test(f));
    expect(tgz).to.have.length(1);
    const files = ok(await run('tar', ['tzf', join(tmp.dir, tgz[0]!)]), 'tar').stdout.split('\n');
    for (const f of [
      'bin/run.js',
      'bin/package.json',
      'dist/fast/lookup.cjs',
      'dist/fast/meta.get.cjs',
      'dist/fast/sqlite-digest.js',
      'dist/src/cli/argv.js',
      'dist/src/index.js',
      'oclif.manifest.json',
    ])
      expect(files, f).to.include(`package/${f}`);
    expect(
      files.filter((f) => f.startsWith('package/dist/test/')),
      'no tests in the package',
    ).to.deep.equal([]);
  });

  it('npm i -g --prefix installs it (dependencies and the native SQLite addon)', async () => {
    const tgz = readdirSync(tmp.dir).find((f) => /^procreg-.*\.tgz$/.test(f));
    expect(tgz, 'the tarball of the previous test').to.be.a('string');
    // better-sqlite3 has no downloadable prebuilt binary here and compiles for minutes; hand its
    // installer (prebuild-install) the addon this checkout's `npm ci` compiled — same version, same
    // Node ABI — as a local prebuild, in the tarball layout it would download.
    const prebuilds = join(tmp.dir, 'prebuilds');
    mkdirSync(prebuilds);
    const sqliteDir = join(ROOT, 'node_modules', 'better-sqlite3');
    const sqliteVersion = (JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')) as { version: string })
      .version;
    const prebuilt = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
    ok(
      await run('tar', ['czf', join(prebuilds, prebuilt), '-C', sqliteDir, 'build/Release/better_sqlite3.node']),
      'tar the prebuild',
    );
    const r = await run(
      'npm',
      ['i', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(tmp.dir, tgz!)],
      // npm's own cache in the real HOME; node-gyp may use both cores if it has to compile after all.
      { cwd: tmp.dir, env: { ...process.env, JOBS: 'max', npm_config_better_sqlite3_local_prebuilds: prebuilds } },
    );
    ok(r, 'npm i -g');
    // light-my-request is a direct dependency pinned to 6.6.0 (cookie@1), which fastify's ^6 range
    // dedupes to: an install of the package honours that, where the package's own `overrides` (and
    // a published npm-shrinkwrap.json, tried) do not apply (issue 15 §4).
    expect(r.stdout + r.stderr, 'npm i -g on Node 20 prints no engine warning').to.not.match(/EBADENGINE/);
    expect(existsSync(registry), `${registry} installed`).to.equal(true);
    for (const f of ['lookup.cjs', 'list.cjs', 'sqlite-digest.js'])
      expect(existsSync(join(installed, 'dist', 'fast', f)), f).to.equal(true);
    const manifest = JSON.parse(readFileSync(join(installed, 'oclif.manifest.json'), 'utf8')) as {
      version: string;
      commands: Record<string, unknown>;
    };
    expect(manifest.version).to.equal(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(Object.keys(manifest.commands).sort()).to.deep.equal(commandIds(join(installed, 'dist', 'src', 'commands')));
  });

  it("runs the README's main job, the lookup fast path and more from the installed registry", async () => {
    expect(existsSync(registry), 'installed by the previous test').to.equal(true);
    expect(ok(await reg(['--version']), '--version').stdout).to.match(/^procreg\/\d+\.\d+\.\d+ /);
    const help = ok(await reg(['--help']), '--help').stdout;
    for (const c of ['register', 'lookup', 'serve', 'migrate']) expect(help).to.include(c);

    // The README's main job: register, then look up (the fast path: no oclif), on the SQLite default.
    const sleeper = await spawnSleeper();
    const pid = String(sleeper.pid);
    ok(await reg(['register', 'hello', '--pid', pid, '--meta', 'role=demo']), 'register');
    expect(existsSync(join(home, 'data', 'registry', 'registry.db')), 'the default SQLite store').to.equal(true);
    const look = ok(await reg(['lookup', 'hello']), 'lookup');
    expect(look.stdout).to.include(pid);
    expect(look.stderr).to.equal('');
    // The installed commands take the light path (src/cli/lite/run.ts says so on request).
    for (const args of [['lookup', 'hello'], ['list'], ['count']])
      expect(ok(await reg(args, { REGISTRY_LITE_REPORT: '1' }), args.join(' ')).stderr).to.equal(`[lite] ${args[0]}\n`);
    expect(ok(await reg(['lookup', 'hello', '--field', 'pid']), 'lookup --field').stdout.trim()).to.equal(pid);
    const json = JSON.parse(ok(await reg(['lookup', 'hello', '--json']), 'lookup --json').stdout);
    expect(json.meta).to.deep.equal({ role: 'demo' });
    // The same command through oclif.
    const slow = await reg(['lookup', 'hello', '--field', 'pid'], { REGISTRY_NO_FASTPATH: '1' });
    expect(ok(slow, 'lookup through oclif').stdout.trim()).to.equal(pid);
    const missing = await reg(['lookup', 'absent']);
    expect(missing.code).to.equal(3);
    expect(missing.stderr).to.match(/^registry: .*absent/);
    expect(missing.stderr).to.not.match(/\n\s+at /);

    expect(ok(await reg(['list']), 'list').stdout).to.include('hello');
    expect(ok(await reg(['count', '--json']), 'count').stdout).to.match(/"total":\s*1\b/);
    expect(ok(await reg(['meta', 'get', 'hello', 'role']), 'meta get').stdout).to.include('demo');

    // A node from the installed package, and the fast path through it.
    const serve = spawn(registry, ['serve', '--listen', '127.0.0.1:0'], {
      env,
      cwd: tmp.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      let err = '';
      serve.stderr.on('data', (c) => (err += c));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve printed no URL in 30 s: ${err}`)), 30_000);
        serve.stdout.on('data', (c) => {
          out += c;
          const u = /(http:\/\/\S+)/.exec(out)?.[1];
          if (u) {
            clearTimeout(timer);
            resolve(u);
          }
        });
        serve.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
      expect(ok(await reg(['-b', url, 'lookup', 'hello', '--field', 'pid']), 'lookup via node').stdout.trim()).to.equal(
        pid,
      );
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.status).to.equal(200);
    } finally {
      if (serve.exitCode === null && serve.signalCode === null) {
        const gone = once(serve, 'exit');
        serve.kill('SIGTERM');
        await gone;
      }
    }

    ok(await reg(['unregister', 'hello']), 'unregister');
    expect((await reg(['lookup', 'hello'])).code).to.equal(3);
  });
});
