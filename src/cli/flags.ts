/** Flags shared by several commands, and their parsing. */
import { Flags } from '@oclif/core';

export { metaFromFlags } from './meta.js';

/** `--meta field=value` (repeatable) and `--meta-json '{…}'`. */
export const metaFlags = {
  meta: Flags.string({
    char: 'm',
    summary: 'Metadata field=value (repeatable; JSON scalars and arrays kept typed).',
    multiple: true,
  }),
  'meta-json': Flags.string({ summary: 'Metadata as one JSON object.', exclusive: ['meta'] }),
};
