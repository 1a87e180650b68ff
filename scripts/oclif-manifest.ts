/**
 * Write oclif.manifest.json, as `oclif manifest` (the oclif dev tool, not installed here) does:
 * oclif's own Plugin loader reads every compiled command (dist/src/commands) and caches their ids,
 * flags, args and paths, so the installed CLI finds commands and prints help without importing each
 * one. The last step of `npm run build` (so `npm test`, `npm pack` and bin/run.js in a checkout all
 * start with it); git ignores it. A command changed after a build is seen after the next build.
 *
 *   node dist/scripts/oclif-manifest.js [ROOT]     (ROOT: the package root, default the cwd)
 *
 * It also writes dist/fast-spec.json: the flag and argument definitions of the commands the
 * cold-start fast path takes (src/cli/fast-ids.ts), so that path parses with oclif's own
 * definitions without reading the whole manifest (parsing it costs ~5 ms of a ~40 ms start).
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Plugin } from '@oclif/core';
import { FAST_COMMAND_IDS } from '../src/cli/fast-ids.js';
import { SPEC_FLAG_FIELDS } from '../src/cli/fast-parse.js';

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

const pick = (o: object, keys: readonly string[]) =>
  Object.fromEntries(Object.entries(o).filter(([k, v]) => keys.includes(k) && v !== undefined));
const spec = Object.fromEntries(
  FAST_COMMAND_IDS.map((id) => {
    const c = plugin.manifest.commands[id.split(' ').join(':')];
    if (!c) throw new Error(`the fast path's command ${id} is not a command`);
    const flags = Object.fromEntries(Object.entries(c.flags).map(([k, f]) => [k, pick(f, SPEC_FLAG_FIELDS)]));
    const args = Object.fromEntries(
      Object.entries(c.args).map(([k, a]) => [k, pick(a, ['name', 'required', 'options', 'default'])]),
    );
    return [id, { flags, args, strict: c.strict }];
  }),
);
writeFileSync(join(root, 'dist', 'fast-spec.json'), `${JSON.stringify(spec)}\n`);
