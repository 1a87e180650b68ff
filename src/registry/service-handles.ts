/**
 * Parts of the registry service kept out of src/registry/service.ts: signalling a registered
 * process (checked right before the kill), the via handle, and the statistics `registry stats`
 * collects.
 */
import { InvalidInputError, NotFoundError, type Registration, type ServiceStats } from '../backends/contract.js';
import type { CacheStats } from './lookup-cache.js';
import { signalTarget } from './liveness.js';
import type { ProcessRegistry } from './service.js';
import type { Via } from './service-types.js';

export type SignalSent = { namespace: string; key: string; pid: number; node: string; signal: string };

/**
 * Signal the live process holding `key` (ProcessRegistry.signal): through a node, the node checks
 * and sends for its own entries; entries of this client's node name are checked and sent here.
 */
export async function signalKey(
  reg: ProcessRegistry,
  namespace: string,
  key: string,
  sig: NodeJS.Signals | number,
  removeDead: (e: Registration) => void,
): Promise<SignalSent> {
  let e: Registration | undefined;
  if (reg.backend.signal) {
    const r = await reg.backend.signal(namespace, key, sig);
    if (r.ok) return r.sent;
    e = r.holder; // not the node's own: ours to check and send, if it has our node name
  } else e = await reg.lookup(key, { namespace });
  if (!e) throw new NotFoundError(namespace, key);
  if (e.node !== reg.nodeName)
    throw new InvalidInputError(
      `"${key}" is held by pid ${e.pid} on node ${e.node}, not this node (${reg.nodeName}): run the signal there`,
      { details: { holder: e } },
    );
  return signalChecked(e, sig, () => removeDead(e));
}

/**
 * Check `e` against the process now holding its pid (fresh /proc read), then signal it; a gone or
 * reused pid calls `removeDead` and reads as NotFoundError.
 */
function signalChecked(e: Registration, sig: NodeJS.Signals | number, removeDead: () => void): SignalSent {
  const check = signalTarget(e.pid, e.pidStart, e.registeredAt);
  if (check === 'gone' || check === 'reused') {
    removeDead();
    throw new NotFoundError(e.namespace, e.key);
  }
  if (check === 'unverifiable')
    throw new InvalidInputError(
      `not signalling pid ${e.pid} of "${e.key}": its start time was not recorded, so a reused pid cannot be ruled out: register it again (registry register ${e.key} --pid ${e.pid})`,
    );
  try {
    process.kill(e.pid, sig);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') throw new NotFoundError(e.namespace, e.key);
    if (code === 'EPERM')
      throw new InvalidInputError(`not permitted to signal pid ${e.pid}: run as its owner`, { cause: err });
    throw err;
  }
  return { namespace: e.namespace, key: e.key, pid: e.pid, node: e.node, signal: String(sig) };
}

/** A handle on a name (Elixir's via tuple). */
export function viaHandle(reg: ProcessRegistry, namespace: string, key: string): Via {
  return {
    namespace,
    key,
    whereis: async () => (await reg.lookup(key, { namespace }))?.pid,
    register: (pid, meta) => reg.register(key, pid, meta, { namespace }),
    unregister: () => reg.unregister(key, { namespace }),
    signal: async (sig = 'SIGTERM') => {
      try {
        await reg.signal(key, sig, { namespace });
        return true;
      } catch (err) {
        if (err instanceof NotFoundError) return false;
        throw err;
      }
    },
  };
}

export interface CollectedStats {
  /** Whose counters: a node's (its GET /v1/stats) or this process's service. */
  countersFrom: 'node' | 'this process';
  counters: ServiceStats;
  /** Stored registrations per namespace (dead ones not yet swept included). */
  namespaces: Record<string, number>;
}

/** ProcessRegistry.collectStats. */
export async function collectStats(reg: ProcessRegistry): Promise<CollectedStats> {
  const b = reg.backend;
  const namespaces: Record<string, number> = {};
  for (const ns of await b.namespaces()) namespaces[ns] = await b.count(ns);
  const remote = b.stats ? await b.stats() : undefined;
  return remote
    ? { countersFrom: 'node', counters: remote, namespaces }
    : { countersFrom: 'this process', counters: await reg.localStats(), namespaces };
}

/** Cache counters with the share of lookups answered from the cache (null before any lookup). */
export function withHitRate(c: CacheStats): CacheStats & { hitRate: number | null } {
  const n = c.hits + c.misses;
  return { ...c, hitRate: n > 0 ? Math.round((c.hits / n) * 10_000) / 10_000 : null };
}
