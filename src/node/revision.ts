/**
 * The node's feed revision as a number. A backend's `currentRevision` may answer synchronously (a
 * node's own feed, SQLite, memory) or with a Promise (etcd: a round trip; a node switched to etcd),
 * so every place the node shows a revision — `nodeInfo` (health, stats), the watch stream's
 * `x-revision` header, its heartbeat lines, the metrics gauge — reads it through here and awaits it.
 * When the backend has no feed or cannot tell (etcd unreachable) the answer is undefined and the
 * caller omits the revision rather than show a guess.
 */
import type { ProcessRegistry } from '../registry/service.js';

export async function feedRevision(reg: ProcessRegistry): Promise<number | undefined> {
  try {
    const r: unknown = await reg.currentRevision();
    return typeof r === 'number' && Number.isSafeInteger(r) && r >= 0 ? r : undefined;
  } catch {
    return undefined;
  }
}
