/** `registry count`: the one implementation the oclif command and the fast path both run. */
import type { CoreCommand } from '../io.js';

export interface CountResult {
  namespaces: Record<string, number>;
  total: number;
}

export const count: CoreCommand<object, { 'all-namespaces'?: boolean }, CountResult> = {
  readOnly: true,
  async run(io, _args, flags) {
    const reg = await io.registry();
    const all = !!flags['all-namespaces'];
    if (all) await reg.assertIntact(); // everything is read: a damaged file is refused
    const spaces = all ? await reg.namespaces() : [io.ns ?? reg.namespace];
    const namespaces: Record<string, number> = {};
    for (const ns of spaces) namespaces[ns] = await reg.count({ namespace: ns });
    const total = Object.values(namespaces).reduce((a, b) => a + b, 0);
    if (!io.jsonEnabled()) {
      if (all) for (const [ns, n] of Object.entries(namespaces)) io.log(`${ns}\t${n}`);
      else io.log(String(total));
    }
    return { namespaces, total };
  },
};
