/** Flags shared by several commands, and their parsing. */
import { Flags } from '@oclif/core';
import type { Meta } from '../backends/contract.js';
import { parseMetaJson, parseMetaPairs } from '../registry/validate.js';

/** `--meta field=value` (repeatable) and `--meta-json '{…}'`. */
export const metaFlags = {
  meta: Flags.string({
    char: 'm',
    summary: 'Metadata field=value (repeatable; JSON scalars and arrays kept typed).',
    multiple: true,
  }),
  'meta-json': Flags.string({ summary: 'Metadata as one JSON object.', exclusive: ['meta'] }),
};

/** The metadata object the meta flags describe (empty when neither is given). */
export function metaFromFlags(flags: { meta?: string[]; 'meta-json'?: string }): Meta {
  return flags['meta-json'] !== undefined ? parseMetaJson(flags['meta-json']) : parseMetaPairs(flags.meta ?? []);
}
