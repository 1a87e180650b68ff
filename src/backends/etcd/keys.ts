/** Key layout helpers, limits and txn op builders of the etcd backend (see index.ts for the layout). */
import type { IKeyValue, IRequestOp, ICompare } from 'etcd3';
import type { Registration } from '../contract.js';

/** Most ops in one txn (etcd's --max-txn-ops default is 128; keep headroom). */
export const MAX_TXN_OPS = 120;
/** Index keys of one registration beyond which it is marked "not indexed" instead. */
export const MAX_INDEX_KEYS = 48;
/** Index values longer than this (bytes) are not indexed (queries for them scan). */
export const MAX_INDEX_VALUE = 200;
/** Bulk txns in flight at once: etcd folds concurrent proposals into one raft round (3 members on 2 cores, `BENCH=migrate BENCH_MIGRATE=etcd`: 16 → 32 took a 100k copy from 5.6 s to 5.0 s). */
export const BULK_CONCURRENCY = 32;
/** Bytes of values in one bulk txn (etcd's request limit is 1.5 MiB). */
export const MAX_TXN_BYTES = 1024 * 1024;

/** Processes remembered per node by the marker cache before it starts over. */
export const MARKER_CACHE_MAX = 200_000;

export interface MarkerGeneration {
  /** modRevision of `g/<node>` ('0': absent) when `known` was started. */
  revision: string;
  known: Set<string>;
}

export const CMP_EQUAL = 0;
export const TARGET_CREATE = 1;
export const TARGET_MOD = 2;

export const ZERO = Buffer.from([0]);

/** The first key after every key starting with `p`. */
export function prefixEnd(p: Buffer): Buffer {
  const out = Buffer.from(p);
  for (let i = out.length - 1; i >= 0; i--) {
    const byte = out[i] ?? 0xff;
    if (byte < 0xff) {
      out[i] = byte + 1;
      return out.subarray(0, i + 1);
    }
  }
  return ZERO;
}

export function put(key: Buffer, value: string, lease?: string): IRequestOp {
  return { request_put: { key, value: Buffer.from(value), lease: lease ?? 0 } };
}

export function modIs(key: Buffer, rev: string): ICompare {
  return { key, target: TARGET_MOD, result: CMP_EQUAL, mod_revision: rev };
}

/** Which process (of which node) an entry belongs to, as a map key. */
export function markerId(e: Pick<Registration, 'node' | 'pid' | 'pidStart'>): string {
  return `${e.node}\u0000${e.pid}\u0000${e.pidStart ?? '-'}`;
}

export function parseEntry(kv: IKeyValue): Registration {
  return JSON.parse(kv.value.toString()) as Registration;
}

/** Split into txn-sized batches with no key twice in one batch. */
export function batches<
  T extends { e: Registration; v: string; aux: Array<[Buffer, string]>; marker: string; gen?: unknown },
>(items: T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let ops = 0;
  let bytes = 0;
  let seen = new Set<string>();
  let markers = new Set<string>();
  for (const it of items) {
    const id = `${it.e.namespace}\u0000${it.e.key}`;
    const marker = it.marker;
    const n = 1 + it.aux.length + (it.gen || markers.has(marker) ? 0 : 1);
    const size = it.v.length;
    if (cur.length && (ops + n > MAX_TXN_OPS || bytes + size > MAX_TXN_BYTES || seen.has(id))) {
      out.push(cur);
      cur = [];
      ops = 0;
      bytes = 0;
      seen = new Set();
      markers = new Set();
    }
    cur.push(it);
    ops += 1 + it.aux.length + (it.gen || markers.has(marker) ? 0 : 1);
    bytes += size;
    seen.add(id);
    markers.add(marker);
  }
  if (cur.length) out.push(cur);
  return out;
}
