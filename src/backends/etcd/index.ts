/**
 * `etcd://H:P[,H:P…][/prefix]` — the registry on an etcd cluster (the seed's Horde backend).
 *
 * Unique names by txn (`createRevision == 0`: exactly one winner across any number of nodes);
 * replacing a holder (same pid, or dead) by a txn conditioned on the holder's modRevision; metadata
 * index keys and the process marker written in the same txn as the registration; liveness by leases held
 * by long-lived processes; a watch change feed; linearizable reads by default (read-your-writes
 * across nodes). Key layout (JSON values, readable with `etcdctl get --prefix /procreg`):
 *
 *   <prefix>/r/<ns>/<key>                              the registration (Registration as JSON)
 *   <prefix>/p/<node>/<pid>/<pidStart|->/<s|n>          process marker {pid,pidStart} (sweeps)
 *   <prefix>/i/<ns>/<field>/<value>/<key>              metadata index {pid}
 *   <prefix>/u/<ns>/<key>                              "not indexed" marker (too many values)
 *   <prefix>/c/<node>                                  last sweep of a node {at}
 *   <prefix>/x/journal, x/applier, x/last, x/s/<id>/…   restore journal and stage (etcd-restore.ts)
 *
 * `<node>`, `<field>` and `<value>` are percent-encoded (no `/`); `<ns>` cannot hold `/`; `<key>`
 * is raw UTF-8, so etcd's byte order is the registry's key order. Every key of a registration
 * shares its lease, so a lease's expiry removes the registration and its index keys at once.
 *
 * Process markers: one key per process (not per entry) tells a node's sweep which processes it
 * has to judge. Every write of a registration carries a nested txn `if createRevision(marker) == 0
 * then put marker`, so a marker exists whenever a registration of its process was written since
 * the marker was last removed. A sweep of a dead process deletes its marker first, then reads the
 * registrations (one snapshot) and compare-and-deletes those of the process: a write racing the
 * sweep either lands before the delete (the read sees it) or recreates the marker (the next sweep
 * sees it). A write with a session lease creates the `s` marker on its lease (it goes with the
 * session), a plain write the `n` marker with none (it stays as long as a plain registration may).
 *
 * Leases (design §1): `lease: 'session'` (default for long-lived openers: the service sweeps,
 * `BackendContext.longLived`) attaches what this process registers to leases it keeps alive, so
 * it vanishes within the TTL when the process dies; `lease: 'none'` (default for one-shot CLI
 * calls) writes plain keys that outlive the process, judged by the owning node's sweep. Because
 * etcd 3.4 applies a put with a lease in time linear in the keys already on that lease (etcd issue
 * 15993), a process holds a pool of leases of at most `keysPerLease` keys each (default 256).
 */

import { journalSummary } from '../etcd-restore.js';
import { matchesWhere } from '../../core/meta.js';
import {
  type Backend,
  type BackendContext,
  type HealthReport,
  InvalidInputError,
  type ListOptions,
  type Page,
  type Registration,
  statusFromDeadShare,
  asRegistryError,
} from '../contract.js';
import { MAX_INDEX_VALUE, ZERO, prefixEnd, parseEntry } from './keys.js';
import { quorumMessage } from './faults.js';
import { type EtcdOptions, parseEtcdUrl, type EtcdBackendApi } from './options.js';
import { EtcdWatch } from './watch.js';

export * from './options.js';

export function createEtcdBackend(
  location: string,
  opts: EtcdOptions & Record<string, unknown>,
  ctx: BackendContext,
): Backend {
  const { endpoints, prefix } = parseEtcdUrl(location);
  // Long-lived openers (their sweep runs) tie registrations to their lifetime; one-shot callers
  // and openers that do not say (a bare openBackend) write keys that outlive them.
  const lease = opts.lease ?? (ctx.longLived ? 'session' : 'none');
  if (lease !== 'session' && lease !== 'none')
    throw new InvalidInputError(`invalid etcd lease mode ${JSON.stringify(lease)}: use "session" or "none"`);
  const ttl = opts.leaseTtl ?? 10;
  if (!Number.isInteger(ttl) || ttl < 2)
    throw new InvalidInputError(`invalid leaseTtl ${JSON.stringify(ttl)}: a whole number of seconds, at least 2`);
  return new EtcdBackend(endpoints, prefix, { ...opts, lease, leaseTtl: ttl }, ctx);
}

class EtcdBackend extends EtcdWatch implements EtcdBackendApi {
  async lookup(namespace: string, key: string): Promise<Registration | undefined> {
    const kv = await this.get(this.rkey(namespace, key));
    return kv ? parseEntry(kv) : undefined;
  }

  /** The entry with the store revision it was read at (the watched cache needs both). */
  async lookupAt(namespace: string, key: string): Promise<{ entry: Registration | undefined; revision: number }> {
    const res = await this.rpc('lookup', () =>
      this.client.kv.range({ key: this.rkey(namespace, key), serializable: this.serializable }),
    );
    this.saw(res.header.revision);
    const kv = res.kvs[0];
    return { entry: kv ? parseEntry(kv) : undefined, revision: Number(res.header.revision) };
  }

  async list(namespace: string, opts: ListOptions): Promise<Page> {
    const limit = Math.max(1, opts.limit ?? 1000);
    const indexed = opts.where?.find(([f, v]) => this.indexFields.has(f) && Buffer.byteLength(v) <= MAX_INDEX_VALUE);
    if (indexed) return this.listByIndex(namespace, opts, limit, indexed);
    const base = this.nsPrefix(namespace);
    const items: Registration[] = [];
    let start = opts.after === undefined ? base : Buffer.concat([base, Buffer.from(opts.after), ZERO]);
    const end = prefixEnd(base);
    for (;;) {
      const want = opts.where ? Math.max(limit * 2, 256) : limit - items.length;
      const res = await this.rpc('list', () =>
        this.client.kv.range({ key: start, range_end: end, limit: want, serializable: this.serializable }),
      );
      for (const [i, kv] of res.kvs.entries()) {
        const e = parseEntry(kv);
        if (!matchesWhere(e.meta, opts.where)) continue;
        items.push(e);
        if (items.length === limit) {
          const more = i < res.kvs.length - 1 || res.more;
          return more ? { items, next: e.key } : { items };
        }
      }
      const lastKv = res.kvs.at(-1);
      if (!res.more || !lastKv) return { items };
      start = Buffer.concat([lastKv.key, ZERO]);
    }
  }

  async count(namespace?: string): Promise<number> {
    const base = namespace === undefined ? this.bytes('/r/') : this.nsPrefix(namespace);
    const res = await this.rpc('count', () =>
      this.client.kv.range({
        key: base,
        range_end: prefixEnd(base),
        count_only: true,
        serializable: this.serializable,
      }),
    );
    return Number(res.count);
  }

  async namespaces(): Promise<string[]> {
    const base = this.bytes('/r/');
    const out: string[] = [];
    let start = base;
    for (;;) {
      const res = await this.rpc('namespaces', () =>
        this.client.kv.range({
          key: start,
          range_end: prefixEnd(base),
          limit: 1,
          keys_only: true,
          serializable: this.serializable,
        }),
      );
      const kv = res.kvs[0];
      if (!kv) return out;
      const rest = kv.key.subarray(base.length).toString();
      const ns = rest.slice(0, rest.indexOf('/'));
      out.push(ns);
      start = prefixEnd(this.nsPrefix(ns));
    }
  }

  async healthCheck(): Promise<HealthReport> {
    this.check();
    const probe = await this.probe(true);
    const base = {
      members: probe.members,
      leader: probe.leader,
      leaderEndpoint: probe.leaderEndpoint,
      raftTerm: probe.raftTerm,
      raftIndex: probe.raftIndex,
      revision: probe.revision,
      dbSize: probe.dbSize,
      endpoints: this.endpoints,
      prefix: this.root,
      leaseMode: this.opts.lease,
      sessionLeases: this.leases?.count() ?? 0,
    };
    if (probe.quorumLost || probe.reachable === 0) {
      return {
        status: 'unhealthy',
        unreachable: true,
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        reasons: [quorumMessage(probe, this.endpoints)],
        ...base,
      };
    }
    try {
      const [registrations, procs, leases, alarms, last, restore] = await Promise.all([
        this.count(),
        this.processes(this.ctx.nodeName),
        this.rpc('health', () => this.client.leaseClient.leaseLeases()),
        this.rpc('health', () => this.client.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' })),
        this.get(this.bytes(`/c/${encodeURIComponent(this.ctx.nodeName)}`)),
        journalSummary(this.journalHost()),
      ]);
      const deadProcs = procs.filter(
        (p) => !this.ctx.isAlive({ pid: p.pid, pidStart: p.pidStart, node: this.ctx.nodeName } as Registration),
      );
      const dead = deadProcs.length ? (await this.entriesOf(this.ctx.nodeName, deadProcs)).length : 0;
      const alive = Math.max(0, registrations - dead);
      const verdict = statusFromDeadShare(alive, dead);
      const alarmList = (alarms.alarms ?? []).map((a) => `${a.alarm} on member ${a.memberID}`);
      const reasons = [...verdict.reasons];
      let status = verdict.status;
      if (alarmList.length) {
        status = 'unhealthy';
        reasons.push(
          `etcd alarms raised: ${alarmList.join(', ')} (NOSPACE: compact, defragment, then \`etcdctl alarm disarm\`)`,
        );
      }
      if (restore.interrupted) {
        if (status === 'healthy') status = 'degraded';
        reasons.push(restore.line ?? 'a restore was interrupted');
      }
      const down = probe.members.filter((m) => !m.reachable);
      if (down.length && status === 'healthy') {
        status = 'degraded';
        reasons.push(`etcd members unreachable: ${down.map((m) => m.endpoint).join(', ')} (quorum holds)`);
      }
      return {
        status,
        reasons,
        registrations,
        alive,
        dead,
        memoryBytes: probe.dbSize,
        lastCleanup: last ? (JSON.parse(last.value.toString()) as { at: number }).at : null,
        leases: leases.leases.length,
        alarms: alarmList,
        ...(restore.line ? { restore: restore.line } : {}),
        ...base,
      };
    } catch (err) {
      const e = asRegistryError(err);
      return {
        status: 'unhealthy',
        registrations: 0,
        alive: 0,
        dead: 0,
        memoryBytes: 0,
        lastCleanup: null,
        reasons: [e.message],
        ...base,
      };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers) await w.cancel().catch(() => undefined);
    this.watchers.clear();
    await this.leases?.revokeAll();
    if (this.wrote) {
      // This writer's fence and token keys (a few bytes; a killed process leaves them behind).
      const base = this.fenceKey();
      await this.client.kv
        .deleteRange({ key: base, range_end: prefixEnd(base) }, { deadline: Date.now() + 1000 })
        .catch(() => undefined);
    }
    this.client.close();
  }
}
