/** `registry register KEY`: the one implementation the oclif command and the fast path both run. */
import type { Registration } from '../../backends/contract.js';
import { validatePid } from '../../registry/validate.js';
import type { CoreCommand } from '../io.js';
import { metaFromFlags } from '../meta.js';

export interface RegisterFlags {
  pid?: string;
  meta?: string[];
  'meta-json'?: string;
  node?: string;
}

export const register: CoreCommand<{ key: string }, RegisterFlags, Registration> = {
  readOnly: false,
  async run(io, args, flags): Promise<Registration> {
    const pid = validatePid(flags.pid ?? String(process.ppid));
    const meta = metaFromFlags(flags);
    const reg = await io.registry();
    const e = await reg.register(args.key, pid, meta, { namespace: io.ns, node: flags.node });
    if (!io.jsonEnabled())
      io.log(`${(await io.colors()).ok('registered')} ${e.key} → pid ${e.pid} on ${e.node} (namespace ${e.namespace})`);
    return e;
  },
};
