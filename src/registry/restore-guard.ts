/**
 * A guarded restore: merge by register's rule with the check inside the commit (`registry import
 * --atomic` through a node and on etcd; docs/import.md). `restoreInto` hands a plan carrying
 * `guard` here:
 *
 *   - a backend with local transactions (memory, SQLite — also the store under a node): every entry
 *     is registered inside one transaction with the guard as `replaceIf`; a refusal throws
 *     AlreadyRegisteredError (the holder) and rolls the whole transaction back;
 *   - otherwise the backend's own staged restore, which must honour `plan.guard` itself: a node
 *     (src/backends/remote.ts sends `guard: "register"`, the node runs this again on its side), etcd
 *     (src/backends/etcd-restore.ts: compares in its commit transaction).
 */
import {
  AlreadyRegisteredError,
  type Backend,
  InvalidInputError,
  type Registration,
  RegistryError,
  type RestoreApplied,
  type RestorePlan,
} from '../backends/contract.js';

/** Register's rule: the same process again (pid and node), or a holder that is no longer alive. */
export function registerRule(isAlive: (e: Registration) => boolean) {
  return (holder: Registration, entry: Registration): boolean =>
    (holder.pid === entry.pid && holder.node === entry.node) || !isAlive(holder);
}

export async function restoreGuarded(backend: Backend, plan: RestorePlan): Promise<RestoreApplied> {
  const guard = plan.guard!;
  if (plan.mode !== 'merge') throw new InvalidInputError('a guarded restore merges: it cannot replace the store');
  if (backend.capabilities.synchronous && backend.transaction)
    return backend.transaction(() => {
      plan.forEachSync((e) => {
        const r = backend.register(e, { replaceIf: (h) => guard(h, e) });
        if (r instanceof Promise) throw new RegistryError('INTERNAL', 'synchronous backend returned a Promise');
        if (!r.ok) throw new AlreadyRegisteredError(r.holder);
      });
      return { cleared: 0 };
    });
  if (backend.restoreAll) return backend.restoreAll(plan);
  throw new InvalidInputError(
    `an all-or-nothing import needs local transactions or a staged restore, and the ${backend.url} store has neither: import without --atomic`,
  );
}
