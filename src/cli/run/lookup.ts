/** `registry lookup KEY`: the one implementation the oclif command and the fast path both run. */
import type { Registration } from '../../backends/contract.js';
import type { CoreCommand } from '../io.js';
import { lookupOrThrow } from '../lookup.js';
import { renderLookup } from '../output.js';

export const lookup: CoreCommand<{ key: string }, { field?: string }, Registration> = {
  readOnly: true,
  // `--json --field pid` prints just the field.
  jsonOff: (flags) => !!flags.field,
  async run(io, args, flags): Promise<Registration> {
    const e = await lookupOrThrow(await io.registry(), args.key, io.ns);
    if (!io.jsonEnabled() || flags.field)
      io.log(renderLookup(e, { field: flags.field, output: io.format(), view: io.view() }));
    return e;
  },
};
