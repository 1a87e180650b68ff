/**
 * `hybrid:` — two backends with the legacy Registry+ETS logic (migration phase 2): writes go to
 * both (primary first; the backup mirrors what the primary accepted), reads try the primary then
 * the backup, listing merges both with the primary winning, and health reports how far the two
 * have diverged. backendOpts: `{primary: URL, backup: URL}` (each may also be
 * `{backend: URL, backendOpts: {...}}`).
 */
import {
  type Backend,
  type BackendContext,
  type BulkResult,
  type Capabilities,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  InvalidInputError,
  type ListOptions,
  type Meta,
  type Page,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  RegistryError,
  type UnregisterCondition,
  type UpdateOptions,
} from './contract.js';
import { openBackend } from './open.js';
import { compareKeys } from '../core/keys.js';

export const HYBRID_BACKEND = 'hybrid';

type Side = string | { backend: string; backendOpts?: Record<string, unknown> };
export interface HybridOptions {
  primary?: Side;
  backup?: Side;
}

const mirror: RegisterOptions = { replaceIf: () => true };

export async function createHybridBackend(
  _location: string,
  opts: HybridOptions,
  ctx: BackendContext,
): Promise<Backend> {
  const open = async (side: Side | undefined, which: string) => {
    if (!side)
      throw new InvalidInputError(
        `hybrid: needs backendOpts.${which}, e.g. {"primary": "legacy:./old.db", "backup": "sqlite:./new.db"}`,
      );
    return typeof side === 'string'
      ? openBackend(side, {}, ctx)
      : openBackend(side.backend, side.backendOpts ?? {}, ctx);
  };
  const primary = await open(opts.primary, 'primary');
  try {
    return new HybridBackend(primary, await open(opts.backup, 'backup'), ctx);
  } catch (err) {
    await primary.close();
    throw err;
  }
}

export class HybridBackend implements Backend {
  readonly name = HYBRID_BACKEND;
  readonly url: string;
  readonly capabilities: Capabilities;
  private closed = false;

  constructor(
    readonly primary: Backend,
    readonly backup: Backend,
    private readonly ctx: BackendContext,
  ) {
    this.url = `hybrid:(${primary.url} + ${backup.url})`;
    this.capabilities = {
      ...defaultCapabilities,
      bulkRegister: true,
      persistent: primary.capabilities.persistent && backup.capabilities.persistent,
      // Reads answer from the primary first: a legacy primary's rows carry no start times.
      startTimes: primary.capabilities.startTimes && backup.capabilities.startTimes,
    };
  }

  private check(): void {
    if (this.closed) throw new ClosedError('the hybrid backend');
  }

  async register(entry: Registration, opts: RegisterOptions): Promise<RegisterOutcome> {
    this.check();
    const r = await this.primary.register(entry, opts);
    if (r.ok) await this.backup.register(r.entry, mirror);
    return r;
  }

  /** The primary decides (atomically when asked); what it accepted is mirrored to the backup. */
  async bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): Promise<BulkResult[]> {
    this.check();
    let results: BulkResult[];
    if (this.primary.bulkRegister) results = await this.primary.bulkRegister(entries, opts);
    else {
      results = [];
      for (const e of entries) results.push(await this.primary.register(e, opts));
      if (opts.atomic && results.some((r) => !r.ok)) {
        const notWritten = new RegistryError('CONFLICT', 'not written: another entry of the atomic batch failed');
        for (const [i, r] of results.entries()) {
          if (!r.ok) continue;
          if (r.replaced) await this.primary.register(r.replaced, mirror);
          else await this.primary.unregister(r.entry.namespace, r.entry.key, { pid: r.entry.pid, node: r.entry.node });
          results[i] = { ok: false, error: notWritten };
        }
      }
    }
    // An atomic batch with a failure wrote nothing (its ok results were rolled back).
    if (opts.atomic && results.some((r) => !r.ok)) return results;
    const accepted = results.flatMap((r) => (r.ok ? [r.entry] : []));
    if (this.backup.bulkRegister) await this.backup.bulkRegister(accepted, mirror);
    else for (const e of accepted) await this.backup.register(e, mirror);
    return results;
  }

  async lookup(namespace: string, key: string): Promise<Registration | undefined> {
    this.check();
    return (await this.primary.lookup(namespace, key)) ?? (await this.backup.lookup(namespace, key));
  }

  async unregister(namespace: string, key: string, cond?: UnregisterCondition): Promise<boolean> {
    this.check();
    const a = await this.primary.unregister(namespace, key, cond);
    const b = await this.backup.unregister(namespace, key, cond);
    return a || b;
  }

  /** Both listings merged in key order, the primary's entry winning a key both hold. */
  async list(namespace: string, opts: ListOptions): Promise<Page> {
    this.check();
    const limit = opts.limit ?? 1000;
    const [pa, pb] = await Promise.all([
      this.primary.list(namespace, { ...opts, limit }),
      this.backup.list(namespace, { ...opts, limit }),
    ]);
    const items: Registration[] = [];
    let i = 0;
    let j = 0;
    while (items.length < limit) {
      const a = pa.items[i];
      const b = pb.items[j];
      if (a === undefined) {
        if (b === undefined) break;
        items.push(b);
        j++;
      } else if (b === undefined) {
        items.push(a);
        i++;
      } else {
        const c = compareKeys(a.key, b.key);
        if (c <= 0) {
          items.push(a);
          i++;
          if (c === 0) j++;
        } else {
          items.push(b);
          j++;
        }
      }
    }
    const more = !!pa.next || !!pb.next || i < pa.items.length || j < pb.items.length;
    // Each side returned its first `limit` keys after the cursor, so the first `limit` of the union are exact.
    const last = items.at(-1);
    return more && last !== undefined ? { items, next: last.key } : { items };
  }

  async updateMetadata(
    namespace: string,
    key: string,
    meta: Meta,
    opts: UpdateOptions,
  ): Promise<Registration | undefined> {
    this.check();
    const next = await this.primary.updateMetadata(namespace, key, meta, opts);
    if (next) await this.backup.register(next, mirror);
    else return this.backup.updateMetadata(namespace, key, meta, opts);
    return next;
  }

  /** Keys in either store (a union count: one merged pass). */
  async count(namespace?: string): Promise<number> {
    this.check();
    const spaces = namespace === undefined ? await this.namespaces() : [namespace];
    let n = 0;
    for (const ns of spaces) {
      let after: string | undefined;
      for (;;) {
        const page = await this.list(ns, { after, limit: 5000 });
        n += page.items.length;
        if (!page.next) break;
        after = page.next;
      }
    }
    return n;
  }

  async namespaces(): Promise<string[]> {
    this.check();
    return [...new Set([...(await this.primary.namespaces()), ...(await this.backup.namespaces())])].sort(compareKeys);
  }

  /** Both reports, and the divergence between the stores (keys only in one, keys that differ). */
  async healthCheck(): Promise<HealthReport> {
    this.check();
    const [p, b] = await Promise.all([this.primary.healthCheck(), this.backup.healthCheck()]);
    // The divergence check is passed in by whoever opened the hybrid (the service wires the
    // migrations' verifyStates): a backend imports nothing from the layers above it.
    const v = this.ctx.compareStores ? await this.ctx.compareStores(this.primary, this.backup) : undefined;
    const diverged = v !== undefined && v.onlyInA + v.onlyInB + v.differing > 0;
    const worst = [p.status, b.status].includes('unhealthy')
      ? 'unhealthy'
      : [p.status, b.status].includes('degraded') || diverged
        ? 'degraded'
        : 'healthy';
    const reasons = [...p.reasons.map((r) => `primary: ${r}`), ...b.reasons.map((r) => `backup: ${r}`)];
    if (diverged) {
      reasons.push(
        `stores diverge: ${v.onlyInA} keys only in the primary, ${v.onlyInB} only in the backup, ${v.differing} differ`,
      );
    }
    return {
      status: worst,
      registrations: p.registrations,
      alive: p.alive,
      dead: p.dead,
      memoryBytes: p.memoryBytes + b.memoryBytes,
      lastCleanup: p.lastCleanup,
      reasons,
      primary: p,
      backup: b,
      ...(v ? { divergence: v } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.primary.close(), this.backup.close()]);
  }

  async clearNamespace(namespace: string): Promise<number> {
    this.check();
    const n = await this.count(namespace);
    for (const s of [this.primary, this.backup]) {
      if (!s.clearNamespace) throw new InvalidInputError(`the ${s.name} backend cannot clear a namespace`);
      await s.clearNamespace(namespace);
    }
    return n;
  }
}
