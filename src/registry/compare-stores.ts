/**
 * The divergence check a backend spanning two stores (hybrid) reports in its health. Backends may
 * not import the layers above them, so the service passes this in through `BackendContext`. The
 * comparison itself is the migrations' `verifyStates`, loaded on first use (only a hybrid's health
 * calls it, so no other command pays for loading it).
 */
import type { Backend, BackendContext, Divergence, Registration } from '../backends/contract.js';

export function storeComparer(isAlive: (e: Registration) => boolean): NonNullable<BackendContext['compareStores']> {
  return async (a: Backend, b: Backend): Promise<Divergence> => {
    const { verifyStates } = await import('../migrations/verify.js');
    const v = await verifyStates({ backend: a, isAlive }, { backend: b, isAlive }, { maxDiffs: 10 });
    return v.totals;
  };
}
