/** The meta flags' parsing, without oclif (the fast path shares it; src/cli/flags.ts re-exports it). */
import type { Meta } from '../backends/contract.js';
import { parseMetaJson, parseMetaPairs } from '../registry/validate.js';

/** The metadata object `--meta k=v…` / `--meta-json '{…}'` describe (empty when neither is given). */
export function metaFromFlags(flags: { meta?: string[]; 'meta-json'?: string }): Meta {
  return flags['meta-json'] !== undefined ? parseMetaJson(flags['meta-json']) : parseMetaPairs(flags.meta ?? []);
}
