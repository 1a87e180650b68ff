/**
 * The light runner (issue 15 §1, docs/cold-start.md). Each bundle of `dist/fast/`
 * (scripts/build-lite.ts) holds one command class, built against the light runtime
 * (src/cli/lite/index.ts) instead of @oclif/core, and this runner. bin/run.js finds the command as
 * oclif does (the longest run of words that names one, topics separated by spaces), loads its
 * bundle and hands the class and the rest of the command line to `runLite`, which checks that it
 * can parse it exactly as oclif would and runs the class — the same code oclif runs, without
 * loading oclif.
 *
 * It declines (returns false, having done and printed nothing) when it cannot answer exactly as
 * oclif would: a command line its parser does not take (src/cli/lite/parse.ts), `--help`,
 * deprecations and aliases, and the environment that changes oclif's own output
 * (REGISTRY_CONTENT_TYPE, DEBUG, REGISTRY_DEBUG, REGISTRY_CONFIG_DIR, a theme file). bin/run.js
 * then runs @oclif/core in full (so do unknown commands, topics, `--version`, and the commands
 * that need oclif's Config, which have no bundle). REGISTRY_LITE_REPORT=1 makes it say on stderr
 * which command it ran (the tests use it).
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { aggregateFlags, Command, type CommandClass, type LiteConfig } from './index.js';
import { parseLite } from './parse.js';

/** The environment oclif's own output depends on, which the light runtime does not reproduce. */
function oclifEnvironment(env: NodeJS.ProcessEnv): boolean {
  if (env.REGISTRY_CONTENT_TYPE || env.DEBUG || env.REGISTRY_DEBUG || env.REGISTRY_CONFIG_DIR) return true;
  const configDir = join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'registry');
  return existsSync(join(configDir, 'theme.json'));
}

const config: LiteConfig = {
  bin: 'registry',
  scopedEnvVar: (k) => process.env[`REGISTRY_${k}`],
};

/** Run the command `Ctor` (`id`, as typed) on `argv`, the words after its id; false when declined (nothing was done or printed: oclif must run it). */
export async function runLite(Ctor: CommandClass | undefined, id: string, argv: readonly string[]): Promise<boolean> {
  if (argv.includes('--help') || oclifEnvironment(process.env)) return false;
  if (typeof Ctor !== 'function' || !(Ctor.prototype instanceof Command)) return false;
  // Deprecation warnings and aliases are oclif's.
  if (Ctor.state === 'deprecated' || Ctor.deprecateAliases || Ctor.aliases?.length || Ctor.hiddenAliases?.length)
    return false;
  const input = {
    flags: aggregateFlags(Ctor.flags, Ctor.baseFlags, Ctor.enableJsonFlag),
    args: Ctor.args ?? {},
    strict: Ctor.strict ?? true,
  };
  if (!(await parseLite(input, argv))) return false;
  if (process.env.REGISTRY_LITE_REPORT) process.stderr.write(`[lite] ${id}\n`);
  Ctor.id = id.split(' ').join(':'); // as oclif names it
  const cmd = new Ctor([...argv], config);
  // A command whose work waits on nothing (a lost worker, a promise no handle will settle) would
  // let the event loop empty and the process end with exit 0, as if it had succeeded: say so, exit 1.
  const unfinished = () => {
    process.stderr.write(`registry: internal error: \`${id}\` stopped before it finished: please report it\n`);
    process.exitCode = 1;
  };
  process.once('beforeExit', unfinished);
  try {
    await cmd._run();
    process.off('beforeExit', unfinished);
  } catch (err) {
    process.off('beforeExit', unfinished);
    // As oclif's handle(): an exit is an exit; anything else is printed, exit 1.
    const e = err as Error & { oclif?: { exit?: number }; code?: string };
    if (e?.code !== 'EEXIT') console.error(e?.stack ?? String(e));
    process.exit(e?.oclif?.exit ?? 1);
  }
  return true;
}
