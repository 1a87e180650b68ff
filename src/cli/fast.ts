/**
 * Cold-start fast path (design §6) for the commands of src/cli/fast-ids.ts on the local SQLite
 * store: the same argument definitions (dist/fast-spec.json, copied from oclif.manifest.json by
 * the build), the same command bodies (src/cli/run/*.ts, which the oclif commands run too), the
 * same error reporting — without loading oclif (~60% of a cold start). Bundled with everything
 * it needs into one file, dist/fast.js, so start-up reads one module instead of dozens.
 *
 * It declines (returns false, and oclif runs the command in full) before doing anything when it
 * cannot answer exactly as oclif would: an argument form its parser does not take
 * (src/cli/fast-parse.ts), a backend other than SQLite, a config it cannot resolve (oclif reports
 * that), REGISTRY_CONTENT_TYPE set.
 */
import { readFileSync } from 'node:fs';
import { resolveBackend } from './config.js';
import { reportError } from './errors.js';
import type { CommandIO, CoreCommand } from './io.js';
import { type CommandSpec, type FastFlags, parseFast } from './fast-parse.js';
import { colors, type OutputFormat, toYaml, viewFor } from './output.js';
import { count } from './run/count.js';
import { lookup } from './run/lookup.js';
import { metaGet } from './run/meta-get.js';
import { register } from './run/register.js';
import { unregister } from './run/unregister.js';
import { ProcessRegistry } from '../registry/service.js';
import { parseBackendUrl } from '../backends/open.js';
import { createSqliteBackend } from '../backends/sqlite.js';

// Each core has its own argument and flag types; the fast parser gives what oclif gives.
const COMMANDS: Record<string, CoreCommand<any, any>> = {
  lookup,
  register,
  unregister,
  count,
  'meta get': metaGet,
};

/** The spec file's content: command id → its oclif definitions. */
export type FastSpec = Record<string, CommandSpec>;

/**
 * Run `registry ID ARGS…` on the fast path; false when it declines (nothing was done or printed).
 * `spec` is dist/fast-spec.json (a missing file declines).
 */
export async function fast(id: string, argv: readonly string[], specFile: URL | string): Promise<boolean> {
  const core = COMMANDS[id];
  if (!core || process.env.REGISTRY_CONTENT_TYPE) return false;
  let spec: CommandSpec | undefined;
  try {
    spec = (JSON.parse(readFileSync(specFile, 'utf8')) as FastSpec)[id];
  } catch {
    return false;
  }
  const parsed = spec && parseFast(spec, argv);
  if (!parsed) return false;
  const { args, flags } = parsed;
  const str = (name: string) => flags[name] as string | undefined;
  let location: string;
  let r: ReturnType<typeof resolveBackend>;
  try {
    r = resolveBackend({ backend: str('backend'), profile: str('profile'), config: str('config') });
    const u = parseBackendUrl(r.backend);
    if (u.info.scheme !== 'sqlite') return false;
    location = u.location;
  } catch {
    return false; // oclif reports it, from the command's own place
  }
  const resolved = r;
  let opened: Promise<ProcessRegistry> | undefined;
  const io = fastIO(
    core,
    flags,
    () =>
      (opened ??= ProcessRegistry.openWith((ctx) => createSqliteBackend(location, resolved.backendOpts, ctx), {
        backendOpts: resolved.backendOpts,
        namespace: str('namespace') ?? resolved.namespace,
        nodeName: str('node-name') ?? resolved.node,
        cleanupInterval: 0,
        stats: false,
        create: !core.readOnly,
      })),
  );
  try {
    const result = await core.run(io, args, flags);
    // As oclif's Command._run: the result is printed when it is the output.
    if (result && io.jsonEnabled())
      process.stdout.write(`${io.format() === 'yaml' ? toYaml(result) : JSON.stringify(result, null, 2)}\n`);
  } catch (err) {
    await reportError(err, io.jsonEnabled() && io.format() !== 'yaml');
  } finally {
    if (opened) await (await opened.catch(() => undefined))?.close().catch(() => undefined);
  }
  return true;
}

/** The CommandIO src/cli/base.ts gives an oclif command, from the fast parser's flags. */
function fastIO(core: CoreCommand<unknown, unknown>, flags: FastFlags, registry: () => Promise<ProcessRegistry>) {
  const format = flags.output as OutputFormat | undefined;
  const json = (!!flags.json || format === 'json' || format === 'yaml') && !core.jsonOff?.(flags);
  const io: CommandIO = {
    registry,
    ns: flags.namespace as string | undefined,
    jsonEnabled: () => json,
    format: () => format,
    view: () => viewFor({ output: format, noHeaders: flags['no-headers'] as boolean | undefined }),
    log: (line) => {
      if (!json) process.stdout.write(`${line}\n`);
    },
    colors: () => colors(process.stdout),
  };
  return io;
}
