#!/usr/bin/env node
// Entry of the `registry` CLI (CommonJS: bin/package.json; an ESM entry costs ~10 ms more to start).
// Every command class runs first on the light runtime: dist/fast/ holds one bundle per command
// (scripts/build-lite.ts: the same class, built with src/cli/lite/ in place of @oclif/core, whose
// load is most of an oclif start). The light runner parses with the class's own definitions and
// runs it; whatever it cannot answer exactly as oclif would (help, forms its parser does not
// take…), it declines before any side effect, and so does this entry for a word that names no
// bundle (unknown commands, topics, --version, the commands that need oclif's Config): oclif then
// runs the command in full. REGISTRY_NO_FASTPATH=1 sends every command through oclif (the
// benchmark and the tests compare both). docs/cold-start.md.
'use strict';
const { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { Module } = require('node:module');
const { homedir } = require('node:os');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const ROOT = join(__dirname, '..');

/** The bundle of the command `argv` starts with, as oclif finds it: the longest run of id words. */
function liteBundle(argv) {
  for (const n of [2, 1]) {
    const words = argv.slice(0, n);
    if (words.length < n || !words.every((w) => /^[a-z][a-z0-9-]*$/.test(w))) continue;
    const file = join(ROOT, 'dist', 'fast', `${words.join('.')}.cjs`);
    if (existsSync(file)) return { file, name: words.join('.'), id: words.join(' '), rest: argv.slice(n) };
  }
  return undefined;
}

/**
 * Load a bundle with a V8 code cache: the code compiled by the first run is kept under
 * $XDG_CACHE_HOME/registry/v8/, named by the bundle and its content hash (its first line, written
 * by the build) and this Node's version, and reused by the next runs (Node 20 has no
 * module.enableCompileCache). REGISTRY_CODE_CACHE=0 turns it off.
 */
function loadBundle({ file, name }) {
  // The bundle's dynamic imports (packages only: scripts/build-lite.ts) go through this module.
  globalThis.__procregImport = (specifier) => import(specifier);
  if (process.env.REGISTRY_CODE_CACHE === '0') return require(file);
  const src = readFileSync(file, 'utf8');
  const key = /^\/\/#lite ([0-9a-f]{16,})/.exec(src)?.[1];
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'registry', 'v8');
  const cache = key && join(dir, `${name}-${key}-${process.version}-${process.arch}.bin`);
  let cachedData;
  try {
    if (cache) cachedData = readFileSync(cache);
  } catch {
    // none yet: this run writes it
  }
  const script = new vm.Script(Module.wrap(src), { filename: file, cachedData });
  const module = { exports: {}, filename: file };
  script
    .runInThisContext()
    .call(module.exports, module.exports, Module.createRequire(file), module, file, dirname(file));
  if (cache && (!cachedData || script.cachedDataRejected))
    process.once('exit', () => {
      try {
        mkdirSync(dir, { recursive: true });
        // This bundle's older caches (an earlier build, another Node) go.
        for (const f of readdirSync(dir)) if (f.startsWith(`${name}-`)) rmSync(join(dir, f), { force: true });
        writeFileSync(`${cache}.${process.pid}`, script.createCachedData());
        renameSync(`${cache}.${process.pid}`, cache);
      } catch {
        // a cache that cannot be written is only a slower start
      }
    });
  return module.exports;
}

async function main() {
  // Global flags may come first (`registry -b URL list`): src/cli/argv.ts moves them behind the command.
  let argv = process.argv.slice(2);
  if (argv[0]?.startsWith('-') && argv[0] !== '--help' && argv[0] !== '--version') {
    argv = (await import('../dist/src/cli/argv.js')).hoistGlobalFlags(argv);
  }
  const lite = process.env.REGISTRY_NO_FASTPATH ? undefined : liteBundle(argv);
  if (lite) {
    const bundle = loadBundle(lite);
    if (await bundle.runLite(bundle.default, lite.id, lite.rest)) return;
  }
  await require('@oclif/core').execute({ args: argv, dir: ROOT });
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
