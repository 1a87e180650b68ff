/**
 * The guard of a staged restore on etcd (`registry import --atomic`, `RestorePlan.guard`): merge
 * by register's rule, checked inside the commit point of src/backends/etcd-restore.ts.
 *
 * etcd cannot compare 100k keys in one transaction (`--max-txn-ops`, 128 by default: compares
 * count too), so the guard works from one revision R:
 *
 *   1. read    every key of the import as it was at R (one snapshot: pages of the namespace, or
 *              gets at revision R when the namespace is much larger than the import) and judge
 *              each holder with the guard; a refusal fails the import before its commit point;
 *   2. commit  the commit-point txn (the journal's compare-and-put) also compares, for the sorted
 *              keys cut into at most RANGES contiguous ranges, "every key in [first, last] has
 *              mod_revision ≤ R" (a range compare). A key written after R — created, replaced, or an
 *              unrelated key between two of the import's — fails the txn as a whole; its failure
 *              branch lists the keys of each range modified after R;
 *   3. again   those of the import's keys are read at the failed txn's revision R' and judged; a
 *              refusal fails the import (AlreadyRegisteredError naming the holder: exit 4, nothing
 *              written); otherwise R := R' and the commit is tried again.
 *
 * So at the instant the commit point applies, every key of the import is as it was judged. After
 * it (the journal's step 4 writes the entries in batches) a key registered in between by another
 * live process is left to it: the guard refuses to overwrite it then too (see `applyRule`).
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { AlreadyRegisteredError, ConflictError, type Registration } from '../contract.js';
import { prefixEnd, TARGET_MOD, ZERO } from './keys.js';

/** Range compares in the commit txn (with the journal's compare, under etcd's 128 per txn). */
const RANGES = 100;
/** Commit attempts while unrelated writes keep landing inside the import's ranges. */
const ATTEMPTS = 20;
const CMP_LESS = 2;

export type Guard = (holder: Registration, entry: Registration) => boolean;

/** What the guard needs of the etcd backend. */
export interface GuardHost {
  client: Etcd3;
  run<T>(what: string, fn: () => Promise<T>): Promise<T>;
  rkey(namespace: string, key: string): Buffer;
  nsPrefix(namespace: string): Buffer;
  parse(kv: IKeyValue): Registration;
}

/** The import's keys (etcd key bytes as latin1 strings: their JS order is etcd's byte order). */
export class GuardedKeys {
  /** key → the first entry of the import for it (what the store's holder is judged against). */
  private readonly first = new Map<string, Registration>();
  private readonly last = new Map<string, Registration>();
  private readonly perNs = new Map<string, number>();

  constructor(
    private readonly host: GuardHost,
    private readonly guard: Guard,
  ) {}

  /** One entry, in file order; a later line for the same key is judged against the earlier one. */
  add(e: Registration): void {
    const k = this.host.rkey(e.namespace, e.key).toString('latin1');
    const before = this.last.get(k);
    if (before && !this.guard(before, e)) throw new AlreadyRegisteredError(before);
    if (!before) {
      this.first.set(k, e);
      this.perNs.set(e.namespace, (this.perNs.get(e.namespace) ?? 0) + 1);
    }
    this.last.set(k, e);
  }

  get size(): number {
    return this.first.size;
  }

  /** Judge a stored holder (a key of the import or not: others are ignored). */
  private judge(kv: IKeyValue): void {
    const mine = this.first.get(kv.key.toString('latin1'));
    if (!mine) return;
    const holder = this.host.parse(kv);
    if (!this.guard(holder, mine)) throw new AlreadyRegisteredError(holder);
  }

  /** Step 1: judge every key as of one revision; returns that revision. */
  async check(): Promise<string> {
    const h = this.host;
    // The revision of a linearizable read now: the snapshot every key is judged at.
    const first = h.nsPrefix([...this.perNs.keys()][0] ?? '');
    const rev = (await h.run('import check', () => h.client.kv.range({ key: first, count_only: true }))).header
      .revision;
    for (const [ns, n] of this.perNs) {
      const base = h.nsPrefix(ns);
      const end = prefixEnd(base);
      const total = Number(
        (
          await h.run('import check', () =>
            h.client.kv.range({ key: base, range_end: end, count_only: true, revision: rev }),
          )
        ).count,
      );
      if (total <= 4 * n) {
        for (let from = base; ;) {
          const page = await h.run('import check', () =>
            h.client.kv.range({ key: from, range_end: end, revision: rev, limit: 2000 }),
          );
          for (const kv of page.kvs) this.judge(kv);
          const lastKv = page.kvs.at(-1);
          if (!page.more || !lastKv) break;
          from = Buffer.concat([lastKv.key, ZERO]);
        }
      } else
        await this.getAt(
          [...this.first.keys()].filter((k) => this.first.get(k)!.namespace === ns),
          rev,
        );
    }
    return rev;
  }

  /** Read these keys at revision `rev` (64 at a time) and judge them. */
  private async getAt(keys: string[], rev: string): Promise<void> {
    const h = this.host;
    let next = 0;
    const worker = async () => {
      for (let k = keys[next++]; k !== undefined; k = keys[next++]) {
        const key = Buffer.from(k, 'latin1');
        const r = await h.run('import check', () => h.client.kv.range({ key, revision: rev }));
        for (const kv of r.kvs) this.judge(kv);
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, keys.length) }, worker));
  }

  /** The import's keys as at most RANGES contiguous [first, last] ranges of the sorted keys. */
  private ranges(): Array<{ key: Buffer; range_end: Buffer }> {
    const sorted = [...this.first.keys()].sort();
    const per = Math.ceil(sorted.length / RANGES);
    const out: Array<{ key: Buffer; range_end: Buffer }> = [];
    for (let i = 0; i < sorted.length; i += per) {
      const last = sorted[Math.min(i + per, sorted.length) - 1]!;
      out.push({
        key: Buffer.from(sorted[i]!, 'latin1'),
        range_end: Buffer.concat([Buffer.from(last, 'latin1'), ZERO]),
      });
    }
    return out;
  }

  /**
   * Steps 2 and 3: run the commit txn (`compare`/`success`, the journal's) with the guard's range
   * compares added, from revision `rev` on. `stillMine` says, from the failure branch's extra
   * read (`failure[0]`), whether the txn failed for the journal's own reason (then: false).
   */
  async commit(
    rev: string,
    txn: { compare: ICompare[]; success: IRequestOp[]; failure: IRequestOp[] },
    stillMine: (journal: IKeyValue | undefined) => boolean,
  ): Promise<boolean> {
    const h = this.host;
    const ranges = this.ranges();
    for (let attempt = 1; ; attempt++) {
      const r = await h.run('restore', () =>
        h.client.kv.txn({
          compare: [
            ...txn.compare,
            ...ranges.map((g): ICompare => ({
              ...g,
              target: TARGET_MOD,
              result: CMP_LESS,
              mod_revision: String(BigInt(rev) + 1n),
            })),
          ],
          success: txn.success,
          failure: [
            ...txn.failure,
            ...ranges.map((g): IRequestOp => ({
              request_range: { ...g, min_mod_revision: String(BigInt(rev) + 1n), keys_only: true },
            })),
          ],
        }),
      );
      if (r.succeeded) return true;
      const [journal, ...moved] = r.responses;
      if (!stillMine(journal?.response_range?.kvs[0])) return false;
      const now = r.header.revision;
      const mine = moved.flatMap((m) =>
        (m.response_range?.kvs ?? []).map((kv) => kv.key.toString('latin1')).filter((k) => this.first.has(k)),
      );
      await this.getAt(mine, now);
      if (attempt >= ATTEMPTS)
        throw new ConflictError(
          `the import's keys kept changing on etcd (${ATTEMPTS} commit attempts, each overtaken by other writes in their key ranges): nothing was written; import again when the store is quieter`,
        );
      rev = now;
    }
  }
}

/**
 * The rule of step 4 (writing the staged entries after the commit point): the guard against the
 * entry being written; for a journal resumed by another process (no guard at hand) only the same
 * process again. A refusal there means another process registered the key after the commit point:
 * its registration is later than the import's and stands.
 */
export function applyRule(guard: Guard | undefined, batch: Registration[]): { replaceIf(h: Registration): boolean } {
  const byKey = new Map(batch.map((e) => [`${e.namespace}\u0000${e.key}`, e]));
  const rule: Guard = guard ?? ((h, e) => h.pid === e.pid && h.node === e.node);
  return {
    replaceIf: (h) => {
      const e = byKey.get(`${h.namespace}\u0000${h.key}`);
      return e !== undefined && rule(h, e);
    },
  };
}
