/**
 * The divergence check a backend spanning two stores (hybrid) reports in its health. Backends may
 * not import the layers above them, so the service passes this in through `BackendContext`. The
 * comparison itself is `verifyStates` (src/registry/compare.ts), loaded on first use (only a
 * hybrid's health calls it, so no other command pays for loading it), run on a read-only service
 * in front of each side (`view`): the sides are compared through the service like any two
 * stores. The views are not closed: the sides belong to the hybrid, which closes them.
 */
import type { Backend, BackendContext, Divergence } from '../backends/contract.js';
import type { State } from './compare.js';

export function storeComparer(view: (side: Backend) => State): NonNullable<BackendContext['compareStores']> {
  return async (a: Backend, b: Backend): Promise<Divergence> => {
    const { verifyStates } = await import('./compare.js');
    const v = await verifyStates(view(a), view(b), { maxDiffs: 10 });
    return v.totals;
  };
}
