/**
 * Live nodes in the phases (issue 14 §5): `migrate cutover --node URL` and `migrate distribute
 * --node URL` switch each named running node (its admin switch route, src/node/switch.ts) to the
 * phase's store, and rollback moves them back. Every move is journaled on the phase's record before
 * it starts and after it ends, so a killed phase can be resumed (a node already on the phase's store
 * is not switched again) or rolled back (a node not on its old store is switched back).
 */
import { InvalidInputError } from '../backends/contract.js';
import type { NodeAdmin } from '../registry/service-base.js';
import { ProcessRegistry } from '../registry/service.js';
import type { Migration } from './context.js';
import type { PhaseRecord } from './journal.js';

/** Where a node is moved: a backend URL as the node sees it, and its options. */
export interface NodeTarget {
  backend: string;
  backendOpts?: Record<string, unknown>;
}

/** One node's move, as journaled on the phase record. */
export interface NodeMove {
  /** The node (http://HOST:PORT). */
  url: string;
  /** The backend the node served before (as it reported it) and the options to return to it. */
  from: string;
  fromOpts?: Record<string, unknown>;
  to: string;
  toOpts?: Record<string, unknown>;
  /** The backend URL the node reported after the switch. */
  reached?: string;
  state: 'switching' | 'switched' | 'back';
}

/** Refuse --node values that are not node URLs before a phase starts. */
export function checkNodeUrls(urls: string[] | undefined): void {
  for (const u of urls ?? [])
    if (!/^https?:\/\/[^/]/i.test(u))
      throw new InvalidInputError(`--node ${u} is not a registry node: pass its http://HOST:PORT`);
}

async function withNode<T>(url: string, f: (b: NodeAdmin) => Promise<T>): Promise<T> {
  const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, stats: false });
  try {
    const node = reg.node();
    if (!node) throw new InvalidInputError(`--node ${url} is not a registry node: pass its http://HOST:PORT`);
    return await f(node);
  } finally {
    await reg.close();
  }
}

/** The options of a config profile on `url` (a hybrid's primary and backup), to return a node to it. */
function optsOf(m: Migration, url: string): Record<string, unknown> | undefined {
  for (const p of Object.values(m.readConfig().profiles ?? {}))
    if (p.backend === url && p.backendOpts) return p.backendOpts;
  return undefined;
}

async function servedBy(b: NodeAdmin): Promise<string> {
  return String((await b.nodeStatus()).stats.backend ?? '');
}

/** Switch each node in `urls` to `to`, journaled on `rec`; returns one note per node. */
export async function moveNodes(m: Migration, rec: PhaseRecord, urls: string[], to: NodeTarget): Promise<string[]> {
  const moves = ((rec.details ??= {}).nodes ??= []) as NodeMove[];
  const notes: string[] = [];
  for (const url of urls) {
    let mv = moves.find((x) => x.url === url && x.state !== 'back');
    await withNode(url, async (b) => {
      const now = await servedBy(b);
      if (mv && (mv.state === 'switched' || now === mv.reached)) {
        mv.state = 'switched';
        notes.push(`node ${url} already serves ${now}`);
        return;
      }
      if (!mv) {
        mv = { url, from: now, fromOpts: optsOf(m, now), to: to.backend, toOpts: to.backendOpts, state: 'switching' };
        moves.push(mv);
      }
      m.journal.save();
      const r = await b.switchNode(to.backend, to.backendOpts ?? {});
      mv.reached = String(r.to);
      mv.state = 'switched';
      m.journal.save();
      notes.push(`node ${url} switched from ${mv.from} to ${mv.reached} (writes paused ${Number(r.pausedMs)} ms)`);
    });
  }
  return notes;
}

/** Move every node the phase switched (or was switching when killed) back to where it was. */
export async function moveNodesBack(m: Migration, rec: PhaseRecord): Promise<string[]> {
  const moves = (rec.details?.nodes ?? []) as NodeMove[];
  const notes: string[] = [];
  for (const mv of moves) {
    if (mv.state === 'back') continue;
    await withNode(mv.url, async (b) => {
      const now = await servedBy(b);
      if (now !== mv.from) {
        await b.switchNode(mv.from, mv.fromOpts ?? {});
        notes.push(`node ${mv.url} switched back to ${mv.from}`);
      } else notes.push(`node ${mv.url} already serves ${mv.from}`);
      mv.state = 'back';
      m.journal.save();
    });
  }
  return notes;
}
