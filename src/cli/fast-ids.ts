/**
 * The commands the cold-start fast path (src/cli/fast.ts) takes. bin/run.js reads this list to
 * decide whether to load the fast bundle; the build copies these commands' flag definitions from
 * oclif.manifest.json into dist/fast-spec.json. Kept free of imports: bin/run.js loads it on
 * every start.
 */
export const FAST_COMMAND_IDS: readonly string[] = ['lookup', 'register', 'unregister', 'count'];
