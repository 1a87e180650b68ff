#!/usr/bin/env node
// Entry of the `registry` CLI. The plain `registry lookup KEY [-n NS] [--json] [--field F]
// [-b URL]` shape takes a fast path that skips loading oclif (~130 ms of a cold start) and calls
// the same code as the lookup command (src/cli/fast.ts, bundled into one file, dist/fast-lookup.js,
// so start-up reads one module instead of fifteen); everything else goes to oclif.
// REGISTRY_NO_FASTPATH=1 sends every command through oclif (the benchmark compares both).

// Global flags may come first (`registry -b URL list`): src/cli/argv.ts moves them behind the command.
let argv = process.argv.slice(2);
if (argv[0]?.startsWith('-') && argv[0] !== '--help' && argv[0] !== '--version') {
  argv = (await import('../dist/src/cli/argv.js')).hoistGlobalFlags(argv);
}
const handled =
  argv[0] === 'lookup' && !process.env.REGISTRY_NO_FASTPATH
    ? await (await import('../dist/fast-lookup.js')).fastLookup(argv.slice(1))
    : false;
if (!handled) {
  const { execute } = await import('@oclif/core');
  await execute({ args: argv, dir: import.meta.url });
}
