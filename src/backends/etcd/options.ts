/** The etcd backend's options, URL and API beyond the contract. */
import { type Backend, InvalidInputError, type Registration } from '../contract.js';

export const ETCD_BACKEND = 'etcd';

/**
 * Keys attached to one session lease before another is granted. Measured on etcd 3.4.23 (bench/
 * etcd.bench.ts, docs/etcd.md): put throughput on a lease carrying 256 keys is 0.93× that on a
 * 16-key lease, 1.6× that on a 1000-key lease, 21× that on a 20,000-key lease; each extra lease
 * costs one keep-alive message per TTL/3.
 */
export const DEFAULT_KEYS_PER_LEASE = 256;

/** The seed's optimization-layer index fields (design §3). */
export const DEFAULT_INDEX_FIELDS = ['type', 'agent_type', 'priority', 'capabilities', 'category', 'tier', 'region'];

export interface EtcdOptions {
  /** `session`: registrations die with this process (lease); `none`: they outlive it. Default by use (see file header). */
  lease?: 'session' | 'none';
  /** Lease TTL in seconds (default 10). */
  leaseTtl?: number;
  /** Keys attached to one lease before another is granted (etcd issue 15993; default 256). */
  keysPerLease?: number;
  /** Metadata fields kept in the native index (default DEFAULT_INDEX_FIELDS). */
  indexFields?: string[];
  /** `linearizable` (default: read-your-writes across nodes) or `serializable` (local member, may be stale). */
  consistency?: 'linearizable' | 'serializable';
  /** Deadline of one etcd call in ms (default 2000). */
  callTimeout?: number;
  /** Total time spent retrying recoverable errors (leader election, a member down) in ms (default 6000). */
  retryTimeout?: number;
}

/** Parse `etcd://h:p[,h:p…][/prefix]` into endpoints and a key prefix (default `/procreg`). */
export function parseEtcdUrl(url: string): { endpoints: string[]; prefix: string } {
  const m = /^etcd:\/\/([^/]*)(\/.*)?$/i.exec(url.trim());
  const usage = 'use etcd://HOST:PORT[,HOST:PORT…][/prefix], e.g. etcd://127.0.0.1:2379/registry';
  if (!m || !m[1]) throw new InvalidInputError(`invalid etcd backend ${JSON.stringify(url)}: ${usage}`);
  const endpoints = m[1].split(',').map((h) => h.trim());
  for (const h of endpoints) {
    const hp = /^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i.exec(h);
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535)
      throw new InvalidInputError(`invalid etcd endpoint ${JSON.stringify(h)} in ${JSON.stringify(url)}: ${usage}`);
  }
  const prefix = (m[2] ?? '/procreg').replace(/\/+$/, '');
  if (/[\u0000-\u001f]/.test(prefix))
    throw new InvalidInputError(`invalid etcd key prefix ${JSON.stringify(prefix)}: no control characters`);
  return { endpoints, prefix };
}

/** What the etcd backend offers beyond the contract (lookupAt and currentRevision serve src/registry/lookup-cache.ts). */
export interface EtcdBackendApi extends Backend {
  /** The stored entry and the store revision it was read at. */
  lookupAt(namespace: string, key: string): Promise<{ entry: Registration | undefined; revision: number }>;
  /** The store's current revision (list-then-watch: list, then watch from it). */
  currentRevision(): Promise<number>;
  watch: NonNullable<Backend['watch']>;
}
