/** The etcd backend's writes: register, unregister, metadata updates, bulk, restore, sweeps. */
import { type JournalHost, restoreWithJournal, resumeJournal } from '../etcd-restore.js';
import { matchesCond } from '../memory.js';
import { mergePatch } from '../../core/meta.js';
import type { IKeyValue, IRequestOp, ICompare } from 'etcd3';
import {
  type BulkResult,
  InvalidInputError,
  type Meta,
  type ProcessSummary,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  RegistryError,
  type RestoreApplied,
  type RestorePlan,
  type UnregisterCondition,
  type UpdateOptions,
  asRegistryError,
} from '../contract.js';
import {
  MAX_TXN_OPS,
  BULK_CONCURRENCY,
  CMP_EQUAL,
  TARGET_CREATE,
  prefixEnd,
  put,
  modIs,
  markerId,
  parseEntry,
  batches,
} from './keys.js';
import { isLeaseGone } from './faults.js';
import { EtcdCore } from './core.js';

export abstract class EtcdWrites extends EtcdCore {
  abstract namespaces(): Promise<string[]>;

  async register(entry: Registration, opts: RegisterOptions): Promise<RegisterOutcome> {
    const key = this.rkey(entry.namespace, entry.key);
    const value = JSON.stringify(entry);
    const aux = this.auxKeys(entry);
    const what = `register "${entry.key}" in namespace "${entry.namespace}"`;
    return this.rpc('register', async () => {
      for (;;) {
        const lease = await this.leaseFor(1 + aux.length + 1);
        const created = await this.attempt(
          what,
          entry.key,
          {
            compare: [{ key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
            success: [put(key, value, lease), ...aux.map(([k, v]) => put(k, v, lease)), this.markerOp(entry, lease)],
            failure: [{ request_range: { key } }],
          },
          (): RegisterOutcome => ({ ok: true, entry }),
        ).catch((err) => this.leaseLost(err, lease));
        if (!created) continue; // our lease expired (a partition longer than the TTL): take a fresh one
        if (created.succeeded) {
          this.settleMarkers(lease, created);
          return { ok: true, entry };
        }
        this.leases?.release(lease, 1 + aux.length + 1);
        // The holder as of this txn (read inside it: linearizable, never a cached copy).
        const kv = created.responses[0]?.response_range.kvs[0];
        if (!kv) continue; // deleted in between: try to create again
        const holder = parseEntry(kv);
        if (!opts.replaceIf(holder)) return { ok: false, holder };
        const lease2 = await this.leaseFor(1 + aux.length + 1);
        const replaced = await this.attempt(
          what,
          entry.key,
          {
            compare: [modIs(key, kv.mod_revision)],
            success: [
              ...this.staleAux(holder, aux),
              put(key, value, lease2),
              ...aux.map(([k, v]) => put(k, v, lease2)),
              this.markerOp(entry, lease2),
            ],
          },
          (): RegisterOutcome => ({ ok: true, entry, replaced: holder }),
        ).catch((err) => this.leaseLost(err, lease2));
        if (replaced?.succeeded) {
          this.settleMarkers(lease2, replaced);
          this.leases?.forget(kv.lease, 1 + this.auxKeys(holder).length);
          return { ok: true, entry, replaced: holder };
        }
        this.leases?.release(lease2, 1 + aux.length + 1);
      }
    });
  }

  /**
   * Unconditional (`cond` undefined) or conditional: decided from a linearizable read (even with
   * `consistency: serializable`) and committed by a txn conditioned on the modRevision read; when
   * the entry changed in between, the txn's failure branch returns the new one and the decision is
   * made again on it.
   */
  async unregister(namespace: string, key: string, cond?: UnregisterCondition): Promise<boolean> {
    const k = this.rkey(namespace, key);
    const what = `unregister "${key}" in namespace "${namespace}"`;
    return this.rpc('unregister', async () => {
      let kv = await this.freshGet(k);
      for (;;) {
        if (!kv) return false;
        const e = parseEntry(kv);
        if (!matchesCond(e, cond)) return false;
        const r = await this.deleteIfUnchanged(kv, e, what);
        if (r === true) return true;
        kv = r.current;
      }
    });
  }

  async updateMetadata(
    namespace: string,
    key: string,
    meta: Meta,
    opts: UpdateOptions,
  ): Promise<Registration | undefined> {
    const k = this.rkey(namespace, key);
    const what = `meta set "${key}" in namespace "${namespace}"`;
    return this.rpc('updateMetadata', async () => {
      // A compare-and-put: decided on a linearizable read, committed only if the entry is unchanged.
      let kv = await this.freshGet(k);
      for (;;) {
        if (!kv) return undefined;
        const old = parseEntry(kv);
        const next: Registration = {
          ...old,
          meta: opts.merge ? (mergePatch(old.meta, meta) as Meta) : meta,
          updatedAt: Date.now(),
        };
        opts.validate?.(next.meta);
        const aux = this.auxKeys(next);
        const lease = kv.lease; // keep the holder's lease: the entry still dies with its owner
        try {
          const r = await this.attempt(
            what,
            key,
            {
              compare: [modIs(k, kv.mod_revision)],
              success: [
                ...this.staleAux(old, aux),
                put(k, JSON.stringify(next), lease),
                ...aux.map(([ak, v]) => put(ak, v, lease)),
                this.markerOp(next, lease),
              ],
              failure: [{ request_range: { key: k } }],
            },
            () => next,
          );
          if (r.succeeded) return next;
          kv = r.responses[0]?.response_range.kvs[0];
        } catch (err) {
          if (!isLeaseGone(err)) throw err;
          kv = await this.freshGet(k); // the owner's lease expired meanwhile: the key is gone
        }
      }
    });
  }

  async bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): Promise<BulkResult[]> {
    if (opts.atomic) return this.bulkAtomic(entries, opts);
    const results: BulkResult[] = new Array(entries.length);
    // Batches of create-if-absent txns, one txn per batch: `txn(all absent)` succeeds for the
    // common case; a batch with a held key falls back to per-entry registers. Each txn carries all
    // keys of its entries (no partial entry); txns of distinct keys are independent, so they run
    // BULK_CONCURRENCY at a time (etcd batches concurrent proposals into one raft round and fsync).
    // Plain (lease-less) bulk writes skip the marker of a process this instance already wrote in the
    // node's current sweep generation; the txn then also compares that generation (see markerCache).
    const gens = this.leases
      ? null
      : new Map(
          await Promise.all(
            [...new Set(entries.map((e) => e.node))].map(async (n) => [n, await this.markerGeneration(n)] as const),
          ),
        );
    const items = entries.map((e, i) => {
      const marker = markerId(e);
      const gen = gens?.get(e.node);
      return {
        e,
        i,
        k: this.rkey(e.namespace, e.key),
        v: JSON.stringify(e),
        aux: this.auxKeys(e),
        marker,
        gen: gen?.known.has(marker) ? gen : undefined,
      };
    });
    const todo = batches(items);
    const distinct = new Set(entries.map((e) => `${e.namespace}\u0000${e.key}`)).size === entries.length;
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      for (let batch = todo[next++]; batch && !failed; batch = todo[next++]) {
        const items = batch; // (a const the closures below can rely on)
        const ok = await this.rpc('bulkRegister', async () => {
          const markers = this.markerOps(items.filter((b) => !b.gen).map((b) => b.e));
          const relied = new Map(items.flatMap((b) => (b.gen ? [[b.e.node, b.gen] as const] : [])));
          const n = items.reduce((s, b) => s + 1 + b.aux.length, 0) + markers.length;
          const lease = await this.leaseFor(n);
          const first = batch[0]?.e;
          const r = await this.attempt(
            `bulk register of ${items.length} entries${first ? ` from "${first.key}" in namespace "${first.namespace}"` : ''}`,
            first?.key ?? '',
            {
              compare: [
                ...items.map((b) => ({ key: b.k, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 })),
                ...[...relied].map(([node, g]) => modIs(this.generationKey(node), g.revision)),
              ],
              success: [
                ...items.flatMap((b) => [put(b.k, b.v, lease), ...b.aux.map(([k, v]) => put(k, v, lease))]),
                ...markers.map((m) => m(lease)),
              ],
            },
            () => true,
          ).catch((err) => this.leaseLost(err, lease));
          if (!r?.succeeded) {
            this.leases?.release(lease, n);
            if (r && relied.size) await this.checkGenerations(relied);
          } else {
            this.settleMarkers(lease, r);
            if (gens) for (const b of items) gens.get(b.e.node)?.known.add(b.marker);
          }
          return !!r?.succeeded; // a lost lease: per-entry registers below take a fresh one
        }).catch((err) => {
          failed = true; // the other workers stop taking batches
          throw err;
        });
        for (const b of items) {
          if (ok) results[b.i] = { ok: true, entry: b.e };
          else {
            try {
              results[b.i] = await this.register(b.e, opts);
            } catch (err) {
              results[b.i] = { ok: false, error: asRegistryError(err) };
            }
          }
        }
      }
    };
    // A key given twice keeps input order (the later one meets the earlier as holder): one at a time.
    const workers = distinct ? Math.min(BULK_CONCURRENCY, todo.length) : 1;
    const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
    const error = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (error) throw error.reason;
    return results;
  }

  /** All or nothing: read every key, decide, then one txn conditioned on every key's revision. */
  protected async bulkAtomic(entries: Registration[], opts: RegisterOptions): Promise<BulkResult[]> {
    // One txn may hold at most --max-txn-ops (128) operations: puts plus deletes of stale index keys.
    const markers = this.markerOps(entries);
    const ops = entries.reduce((s, e) => s + 1 + 2 * this.auxKeys(e).length, 0) + markers.length;
    if (ops > MAX_TXN_OPS || new Set(entries.map((e) => `${e.namespace}\u0000${e.key}`)).size !== entries.length) {
      throw new InvalidInputError(
        `an atomic bulk register on etcd is one transaction of at most ${MAX_TXN_OPS} operations (about ${Math.floor(MAX_TXN_OPS / 4)} distinct keys): split the batch or drop --atomic`,
      );
    }
    return this.rpc('bulkRegister', async () => {
      for (;;) {
        const keys = entries.map((e) => this.rkey(e.namespace, e.key));
        const read = await this.client.kv.txn({ success: keys.map((key) => ({ request_range: { key } })) });
        this.saw(read.header.revision);
        const current = read.responses.map((r) => r.response_range.kvs[0]);
        const results: BulkResult[] = entries.map((e, i) => {
          const kv = current[i];
          if (!kv) return { ok: true, entry: e };
          const holder = parseEntry(kv);
          return opts.replaceIf(holder) ? { ok: true, entry: e, replaced: holder } : { ok: false, holder };
        });
        if (results.some((r) => !r.ok)) {
          return results.map((r) =>
            r.ok
              ? {
                  ok: false,
                  error: new RegistryError('CONFLICT', 'not written: another entry of the atomic batch failed'),
                }
              : r,
          );
        }
        const n = entries.reduce((s, e) => s + 1 + this.auxKeys(e).length, 0) + markers.length;
        const lease = await this.leaseFor(n);
        const compare: ICompare[] = keys.map((key, i) => {
          const kv = current[i];
          return kv
            ? modIs(key, kv.mod_revision)
            : { key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 };
        });
        const success: IRequestOp[] = entries.flatMap((e, i) => {
          const aux = this.auxKeys(e);
          const kv = current[i];
          const stale = kv ? this.staleAux(parseEntry(kv), aux) : [];
          return [
            ...stale,
            put(this.rkey(e.namespace, e.key), JSON.stringify(e), lease),
            ...aux.map(([k, v]) => put(k, v, lease)),
          ];
        });
        success.push(...markers.map((m) => m(lease)));
        const first = entries[0];
        const r = await this.attempt(
          `atomic bulk register of ${entries.length} entries${first ? ` from "${first.key}" in namespace "${first.namespace}"` : ''}`,
          first?.key ?? '',
          { compare, success },
          () => results,
        );
        if (r.succeeded) {
          this.settleMarkers(lease, r);
          return results;
        }
        this.leases?.release(lease, n);
      }
    });
  }

  /** Restore all or nothing through a journal (src/backends/etcd-restore.ts, docs/restore.md). */
  restoreAll(plan: RestorePlan): Promise<RestoreApplied> {
    return restoreWithJournal(this.journalHost(), plan);
  }

  resumeRestore(): Promise<RestoreApplied['recovered']> {
    return resumeJournal(this.journalHost());
  }

  protected journalHost(): JournalHost {
    return {
      client: this.client,
      root: this.root,
      run: (what, fn) => this.rpc(what, fn),
      bulkRegister: (entries, opts) => this.bulkRegister(entries, opts),
      clearNamespace: (ns) => this.clearNamespace(ns),
      namespaces: () => this.namespaces(),
      rkey: (ns, key) => this.rkey(ns, key),
      nsPrefix: (ns) => this.nsPrefix(ns),
      parse: parseEntry,
    };
  }

  async clearNamespace(namespace: string): Promise<number> {
    // Deleted in pages (not one huge range delete: etcd 3.4 reads stay slow after a large delete),
    // each page as txns of whole entries (registration + index keys) conditioned on the entry's
    // modRevision, BULK_CONCURRENCY at a time; a txn whose entries changed meanwhile falls back to
    // per-entry compare-and-delete.
    const base = this.nsPrefix(namespace);
    let removed = 0;
    for (;;) {
      const page = await this.rpc('clearNamespace', () =>
        this.client.kv.range({ key: base, range_end: prefixEnd(base), limit: 2000 }),
      );
      if (page.kvs.length === 0) return removed;
      const groups: Array<Array<{ kv: IKeyValue; e: Registration; ops: IRequestOp[] }>> = [];
      let cur: (typeof groups)[number] = [];
      let n = 0;
      for (const kv of page.kvs) {
        const e = parseEntry(kv);
        const ops = this.deleteOps(e);
        if (cur.length && n + ops.length > MAX_TXN_OPS) {
          groups.push(cur);
          cur = [];
          n = 0;
        }
        cur.push({ kv, e, ops });
        n += ops.length;
      }
      if (cur.length) groups.push(cur);
      let next = 0;
      const worker = async () => {
        for (let g = groups[next++]; g; g = groups[next++]) {
          const group = g;
          const r = await this.rpc('clearNamespace', () =>
            this.client.kv.txn({
              compare: group.map((x) => modIs(x.kv.key, x.kv.mod_revision)),
              success: group.flatMap((x) => x.ops),
            }),
          );
          if (r.succeeded) {
            removed += group.length;
            for (const x of group) this.leases?.forget(x.kv.lease, 1 + this.auxKeys(x.e).length);
            continue;
          }
          for (const x of group)
            if (
              await this.unregister(namespace, x.e.key, {
                pid: x.e.pid,
                registeredAt: x.e.registeredAt,
                node: x.e.node,
              })
            )
              removed++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, groups.length) }, worker));
    }
  }

  /** The processes of `node` that have (or had, since their last sweep) registrations: its markers. */
  async processes(node: string): Promise<ProcessSummary[]> {
    const base = this.bytes(`/p/${encodeURIComponent(node)}/`);
    const out: ProcessSummary[] = [];
    let last = '';
    for await (const kv of this.scan('processes', base)) {
      const [pid, start] = kv.key.subarray(base.length).toString().split('/');
      if (`${pid}/${start}` === last) continue; // its `s` and `n` markers are adjacent
      last = `${pid}/${start}`;
      out.push({ pid: Number(pid), pidStart: start === '-' || start === undefined ? null : Number(start) });
    }
    return out;
  }

  /**
   * Remove every registration of the given (dead) processes of `node`: their markers first, then
   * one read of the registrations and a compare-and-delete of each of theirs (see the header for
   * why this order loses no registration to a racing write).
   */
  async removeProcesses(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>): Promise<number> {
    if (procs.length === 0) return 0;
    for (let i = 0; i < procs.length; i += MAX_TXN_OPS - 1) {
      const ops: IRequestOp[] = procs.slice(i, i + MAX_TXN_OPS - 1).map((p) => {
        const base = this.markerBase({ node, ...p });
        return { request_delete_range: { key: base, range_end: prefixEnd(base), prev_kv: true } };
      });
      // A new sweep generation: bulk writers that skipped these markers as known must look again.
      ops.push(put(this.generationKey(node), JSON.stringify({ at: Date.now() })));
      const r = await this.rpc('removeProcess', () => this.client.kv.txn({ success: ops }));
      for (const res of r.responses)
        for (const kv of res.response_delete_range?.prev_kvs ?? [])
          if (kv.lease !== '0') this.leases?.forget(kv.lease, 1);
    }
    const doomed = await this.entriesOf(node, procs);
    let removed = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let kv = doomed[next++]; kv; kv = doomed[next++]) {
        // Not deleted: rewritten meanwhile, and the write recreated the marker: the next sweep judges it.
        const e = parseEntry(kv);
        const what = `sweep of "${e.key}" in namespace "${e.namespace}"`;
        if ((await this.rpc('removeProcess', () => this.deleteIfUnchanged(kv, e, what))) === true) removed++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, doomed.length) }, worker));
    return removed;
  }

  /**
   * The stored registrations of these processes of `node`, read from one snapshot of every
   * namespace — a linearizable one even with `consistency: serializable`: a sweep's snapshot must
   * follow its marker delete, or a registration written in between could be missed.
   */
  protected async entriesOf(
    node: string,
    procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>,
  ): Promise<IKeyValue[]> {
    const wanted = new Set(procs.map((p) => `${p.pid}/${p.pidStart ?? '-'}`));
    const out: IKeyValue[] = [];
    for await (const kv of this.scan('removeProcess', this.bytes('/r/'), true)) {
      const e = parseEntry(kv);
      if (e.node === node && wanted.has(`${e.pid}/${e.pidStart ?? '-'}`)) out.push(kv);
    }
    return out;
  }

  async markCleanup(at: number): Promise<void> {
    const key = this.bytes(`/c/${encodeURIComponent(this.ctx.nodeName)}`);
    await this.rpc('markCleanup', () => this.client.kv.put({ key, value: Buffer.from(JSON.stringify({ at })) }));
  }
}
