/** `registry meta get KEY [FIELD]`: the one implementation the oclif command and the fast path both run. */
import type { CoreCommand } from '../io.js';
import { lookupOrThrow, metaFieldOrThrow } from '../lookup.js';

export const metaGet: CoreCommand<{ key: string; field?: string }, object> = {
  readOnly: true,
  async run(io, args) {
    const e = await lookupOrThrow(await io.registry(), args.key, io.ns);
    const value = args.field === undefined ? e.meta : metaFieldOrThrow(e, args.field);
    if (!io.jsonEnabled()) io.log(JSON.stringify(value, null, 2));
    return args.field === undefined ? value : { [args.field]: value };
  },
};
