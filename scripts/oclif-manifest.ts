/**
 * Write oclif.manifest.json, as `oclif manifest` (the oclif dev tool, not installed here) does:
 * oclif's own Plugin loader reads every compiled command (dist/src/commands) and caches their ids,
 * flags, args and paths, so the installed CLI finds commands and prints help without importing each
 * one. The last step of `npm run build` (so `npm test`, `npm pack` and bin/run.js in a checkout all
 * start with it); git ignores it. A command changed after a build is seen after the next build.
 *
 *   node dist/scripts/oclif-manifest.js [ROOT]     (ROOT: the package root, default the cwd)
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Plugin } from '@oclif/core';

const root = resolve(process.argv[2] ?? '.');
const plugin = new Plugin({
  root,
  type: 'core',
  isRoot: true,
  ignoreManifest: true,
  errorOnManifestCreate: true,
  respectNoCacheDefault: true,
});
await plugin.load();
const count = Object.keys(plugin.manifest.commands).length;
if (count === 0) throw new Error(`no commands found under ${root}: run npm run build first`);
writeFileSync(join(root, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest, null, 2)}\n`);
console.log(`oclif.manifest.json: ${count} commands, version ${plugin.manifest.version}`);
