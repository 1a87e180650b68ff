/** `registry unregister KEY`: the one implementation the oclif command and the fast path both run. */
import type { CoreCommand } from '../io.js';

export interface UnregisterResult {
  namespace: string;
  key: string;
  removed: boolean;
}

export const unregister: CoreCommand<{ key: string }, object, UnregisterResult> = {
  readOnly: false,
  async run(io, args) {
    const reg = await io.registry();
    const removed = await reg.unregister(args.key, { namespace: io.ns });
    const namespace = io.ns ?? reg.namespace;
    if (!io.jsonEnabled())
      io.log(removed ? `unregistered ${args.key}` : `${args.key} was not registered (nothing to do)`);
    return { namespace, key: args.key, removed };
  },
};
