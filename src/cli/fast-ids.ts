/**
 * The commands the cold-start fast path (src/cli/fast.ts) takes, as typed (`meta get`). bin/run.js
 * reads this list to decide whether to load the fast bundle; the build copies these commands' flag
 * definitions from oclif.manifest.json into dist/fast-spec.json. Kept free of imports: bin/run.js
 * loads it on every start.
 */
export const FAST_COMMAND_IDS: readonly string[] = ['lookup', 'register', 'unregister', 'count', 'meta get'];

/** The fast command `argv` starts with, and the words after it; undefined for any other command. */
export function fastCommand(argv: readonly string[]): { id: string; rest: string[] } | undefined {
  for (const id of FAST_COMMAND_IDS) {
    const words = id.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { id, rest: argv.slice(words.length) };
  }
  return undefined;
}
