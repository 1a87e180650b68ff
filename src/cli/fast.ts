/**
 * Cold-start fast path for `registry lookup KEY` (design §6): the same resolution, service and
 * rendering code as the lookup command (src/commands/lookup.ts), without loading oclif. Any
 * argument it does not know (help, unknown flags, two keys) returns false and oclif handles the
 * command in full. Only the local SQLite backend is taken here (statically imported, so the bundle
 * `dist/fast-lookup.js` built by `npm run build` holds everything the path needs in one file);
 * other backends go through oclif.
 */
import { resolveBackend } from './config.js';
import { GLOBAL_VALUE_FLAGS } from './argv.js';
import { reportError } from './errors.js';
import { lookupOrThrow } from './lookup.js';
import { OUTPUT_FORMATS, renderLookup, viewFor } from './output.js';
import { ProcessRegistry } from '../registry/service.js';
import { parseBackendUrl } from '../backends/open.js';
import { createSqliteBackend } from '../backends/sqlite.js';

const VALUE_FLAGS = new Map<string, string>([...GLOBAL_VALUE_FLAGS, ['-f', 'field'], ['--field', 'field']]);

export async function fastLookup(args: string[]): Promise<boolean> {
  const o: Record<string, string> = {};
  let json = false;
  let key: string | undefined;
  const rest = args.slice();
  for (let a = rest.shift(); a !== undefined; a = rest.shift()) {
    const flag = VALUE_FLAGS.get(a);
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const inlineFlag = eq >= 0 ? VALUE_FLAGS.get(a.slice(0, eq)) : undefined;
    if (a === '--json') json = true;
    else if (a === '--no-headers') continue;
    else if (flag !== undefined) {
      const value = rest.shift();
      if (value === undefined || o[flag] !== undefined) return false;
      o[flag] = value;
    } else if (inlineFlag !== undefined) {
      o[inlineFlag] = a.slice(eq + 1);
    } else if (a.startsWith('-') || key !== undefined) return false;
    else key = a;
  }
  if (key === undefined) return false;
  // An unknown -o form is oclif's to refuse.
  if (o.output !== undefined && !(OUTPUT_FORMATS as readonly string[]).includes(o.output)) return false;
  if (o.output === 'json') json = true;
  let reg: ProcessRegistry | undefined;
  try {
    const r = resolveBackend({ backend: o.backend, profile: o.profile, config: o.config });
    const { info, location } = parseBackendUrl(r.backend);
    if (info.scheme !== 'sqlite') return false;
    reg = await ProcessRegistry.openWith((ctx) => createSqliteBackend(location, r.backendOpts, ctx), {
      backendOpts: r.backendOpts,
      namespace: o.namespace ?? r.namespace,
      nodeName: o.node ?? r.node,
      cleanupInterval: 0,
      stats: false,
      create: false, // a lookup never creates the store
    });
    const e = await lookupOrThrow(reg, key, o.namespace);
    const asJson = json && !o.field;
    process.stdout.write(`${renderLookup(e, { json: asJson, output: o.output, field: o.field, view: viewFor(o) })}\n`);
  } catch (err) {
    await reportError(err, json && !o.field && o.output !== 'yaml');
  } finally {
    await reg?.close().catch(() => undefined);
  }
  return true;
}
