#!/usr/bin/env node
// Entry of the `registry` CLI. The commands of src/cli/fast-ids.ts (lookup, register, unregister,
// count, meta get) on the local SQLite store take a fast path that skips loading oclif (~60% of a cold
// start): src/cli/fast.ts, bundled into one file (dist/fast.js) so start-up reads one module
// instead of dozens. It parses with the commands' own oclif definitions (dist/fast-spec.json) and
// runs the same command bodies (src/cli/run/*.ts); whatever it does not take, oclif runs in full.
// REGISTRY_NO_FASTPATH=1 sends every command through oclif (the benchmark compares both).

// Global flags may come first (`registry -b URL list`): src/cli/argv.ts moves them behind the command.
let argv = process.argv.slice(2);
if (argv[0]?.startsWith('-') && argv[0] !== '--help' && argv[0] !== '--version') {
  argv = (await import('../dist/src/cli/argv.js')).hoistGlobalFlags(argv);
}
const taken = process.env.REGISTRY_NO_FASTPATH
  ? undefined
  : (await import('../dist/src/cli/fast-ids.js')).fastCommand(argv);
const fastSpec = new URL('../dist/fast-spec.json', import.meta.url);
const handled = taken ? await (await import('../dist/fast.js')).fast(taken.id, taken.rest, fastSpec) : false;
if (!handled) {
  const { execute } = await import('@oclif/core');
  await execute({ args: argv, dir: import.meta.url });
}
