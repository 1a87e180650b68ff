/**
 * `restore` on etcd, all or nothing through a journal (docs/restore.md). etcd cannot swap 200k keys
 * in one transaction (`--max-txn-ops`, 128 by default), so:
 *
 *   1. claim    put `x/journal` {state: staging} on a lease this process keeps alive
 *               (create-if-absent: one restore at a time)
 *   2. stage    the dump's entries go to `x/s/<id>/<seq>` (batches of entries, plain keys);
 *               the live registrations are not touched
 *   3. commit   one txn, conditioned on the journal being ours and unchanged, turns it into
 *               {state: applying} *without* a lease and takes `x/applier` on the lease:
 *               the commit point. Before it a killed client leaves the old state (its journal
 *               goes with its lease; the next restore deletes the orphaned stage); after it
 *               the restore is decided
 *   4. apply    replace: clear the namespaces; then write every staged entry (idempotent: a
 *               re-run starts this step again)
 *   5. finish   one txn deletes the journal and the applier and records `x/last`; the stage is deleted
 *
 * A process killed in step 4 leaves a journal in state `applying` and no live applier: the next
 * `registry restore` (or `registry restore --resume`) completes it before anything else, and
 * `registry health` reports it. Until then readers see the store part way through step 4: the
 * guarantee on etcd is "decided at one txn, completed by the next restore", not a single swap.
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { testPause } from '../core/test-pause.js';
import { applyRule, type Guard, GuardedKeys, type GuardHost } from './etcd/restore-guard.js';
import {
  type BulkResult,
  ConflictError,
  type RegisterOptions,
  type Registration,
  RegistryError,
  type RestoreApplied,
  type RestorePlan,
  UnreachableError,
} from './contract.js';

/** What the journal needs of the etcd backend (the guard's needs included: src/backends/etcd/restore-guard.ts). */
export interface JournalHost extends GuardHost {
  client: Etcd3;
  /** The backend's key prefix, e.g. `/procreg`. */
  root: string;
  /** The backend's retrying call wrapper. */
  run<T>(what: string, fn: () => Promise<T>): Promise<T>;
  bulkRegister(entries: Registration[], opts: RegisterOptions): Promise<BulkResult[]>;
  clearNamespace(namespace: string): Promise<number>;
  namespaces(): Promise<string[]>;
}

interface Journal {
  id: string;
  mode: 'merge' | 'replace';
  count: number;
  digest: string;
  namespaces: string[];
  state: 'staging' | 'applying';
  batches: number;
  startedAt: number;
  committedAt?: number;
  /** An `import --atomic`: register's rule (RestorePlan.guard), also while step 4 writes. */
  guard?: boolean;
}

/** Lease TTL (s) of a restoring process: how long the next restore waits for a killed one's claim to lapse. */
const CLAIM_TTL = 5;
/** Entries per staged key (well under etcd's 1.5 MiB request limit for ordinary entries). */
const STAGE_BATCH = 500;
/** Staged keys written at once. */
const STAGE_CONCURRENCY = 8;

const always: RegisterOptions = { replaceIf: () => true };

class Keys {
  constructor(private readonly root: string) {}
  get journal() {
    return Buffer.from(`${this.root}/x/journal`);
  }
  get applier() {
    return Buffer.from(`${this.root}/x/applier`);
  }
  get last() {
    return Buffer.from(`${this.root}/x/last`);
  }
  get stages() {
    return `${this.root}/x/s/`;
  }
  stage(id: string) {
    return `${this.root}/x/s/${id}/`;
  }
  batch(id: string, seq: number) {
    return Buffer.from(`${this.stage(id)}${String(seq).padStart(8, '0')}`);
  }
}

export async function restoreWithJournal(host: JournalHost, plan: RestorePlan): Promise<RestoreApplied> {
  const k = new Keys(host.root);
  const lease = host.client.lease(CLAIM_TTL, { autoKeepAlive: true });
  const leaseId = await host.run('restore', () => lease.grant());
  let lost = false;
  lease.on('lost', () => (lost = true));
  try {
    const recovered = await settle(host, k, leaseId);
    // 1. claim
    const journal: Journal = {
      id: plan.id,
      mode: plan.mode,
      count: plan.count,
      digest: plan.digest,
      namespaces: plan.namespaces,
      state: 'staging',
      batches: 0,
      startedAt: Date.now(),
      ...(plan.guard ? { guard: true } : {}),
    };
    const claimed = await host.run('restore', () =>
      host.client.kv.txn({
        compare: [{ key: k.journal, target: 1 /* create */, result: 0 /* equal */, create_revision: 0 }],
        success: [put(k.journal, journal, leaseId)],
      }),
    );
    if (!claimed.succeeded) throw busy(await read(host, k.journal));
    // 2. stage (a guarded plan also collects its keys, judging repeated ones by the guard)
    const guarded = plan.guard ? new GuardedKeys(host, plan.guard) : undefined;
    let seq = 0;
    const inflight = new Set<Promise<unknown>>();
    for await (const batch of plan.batches(STAGE_BATCH)) {
      if (lost) throw lostClaim(plan.id);
      if (guarded) for (const e of batch) guarded.add(e);
      const p = host.run('restore', () =>
        host.client.kv.put({ key: k.batch(plan.id, seq++), value: Buffer.from(JSON.stringify(batch)) }),
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p)).catch(() => undefined);
      if (inflight.size >= STAGE_CONCURRENCY) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    // 3. commit point
    const mine = await read(host, k.journal);
    if (lost || !mine || (JSON.parse(mine.value.toString()) as Journal).id !== plan.id) throw lostClaim(plan.id);
    const applying: Journal = { ...journal, state: 'applying', batches: seq, committedAt: Date.now() };
    const compare: ICompare[] = [{ key: k.journal, target: 2 /* mod */, result: 0, mod_revision: mine.mod_revision }];
    const success = [put(k.journal, applying), put(k.applier, { id: plan.id, pid: process.pid }, leaseId)];
    let committed: boolean;
    if (guarded) {
      try {
        const rev = await guarded.check();
        await testPause('etcd-import-commit');
        committed = await guarded.commit(
          rev,
          { compare, success, failure: [{ request_range: { key: k.journal } }] },
          (j) => !!j && j.mod_revision === mine.mod_revision,
        );
      } catch (err) {
        // Refused before the commit point: nothing applied; the claim and the stage go now.
        await dropClaim(host, k, plan.id, mine.mod_revision).catch(() => undefined);
        throw err;
      }
    } else committed = (await host.run('restore', () => host.client.kv.txn({ compare, success }))).succeeded;
    if (!committed) throw lostClaim(plan.id);
    // 4, 5
    const cleared = await apply(host, k, applying, plan.guard);
    return { cleared, ...(recovered ? { recovered } : {}) };
  } finally {
    await lease.revoke().catch(() => lease.release());
  }
}

/** `registry restore --resume`: settle an interrupted restore (complete or discard); what was done. */
export async function resumeJournal(host: JournalHost): Promise<RestoreApplied['recovered']> {
  const k = new Keys(host.root);
  const lease = host.client.lease(CLAIM_TTL, { autoKeepAlive: true });
  const leaseId = await host.run('restore', () => lease.grant());
  try {
    return await settle(host, k, leaseId);
  } finally {
    await lease.revoke().catch(() => lease.release());
  }
}

/** One line for `registry health`: an interrupted or running restore, or the last one. */
export async function journalSummary(host: JournalHost): Promise<{ line?: string; interrupted: boolean }> {
  const k = new Keys(host.root);
  const [j, a, last] = await Promise.all([read(host, k.journal), read(host, k.applier), read(host, k.last)]);
  if (j) {
    const journal = JSON.parse(j.value.toString()) as Journal;
    if (journal.state === 'staging')
      return {
        line: `restore ${journal.id} is staging (${journal.count} entries): nothing applied yet; if its process died, the next restore discards it`,
        interrupted: false,
      };
    if (a) return { line: `restore ${journal.id} is being applied (${journal.count} entries)`, interrupted: false };
    return {
      line: `restore ${journal.id} (${journal.mode}, ${journal.count} entries) was interrupted after its commit point: the store is part way to it; \`registry restore --resume\` completes it`,
      interrupted: true,
    };
  }
  if (!last) return { interrupted: false };
  const l = JSON.parse(last.value.toString()) as Journal & { completedAt: number };
  return {
    line: `last restore ${l.id} (${l.mode}, ${l.count} entries, digest ${l.digest.slice(0, 16)}…) completed at ${new Date(l.completedAt).toISOString()}`,
    interrupted: false,
  };
}

/**
 * Settle what an earlier restore left: a journal `applying` with no live applier is completed; a
 * stage with no journal (its process died before the commit point) is deleted. A live claim is
 * waited for (a killed process's lapses within CLAIM_TTL), then refused.
 */
async function settle(host: JournalHost, k: Keys, leaseId: string): Promise<RestoreApplied['recovered']> {
  const deadline = Date.now() + (CLAIM_TTL + 3) * 1000;
  for (;;) {
    const [j, a] = await Promise.all([read(host, k.journal), read(host, k.applier)]);
    if (!j) return discardOrphans(host, k);
    const journal = JSON.parse(j.value.toString()) as Journal;
    if (journal.state === 'applying' && !a) {
      const took = await host.run('restore', () =>
        host.client.kv.txn({
          compare: [
            { key: k.journal, target: 2, result: 0, mod_revision: j.mod_revision },
            { key: k.applier, target: 1, result: 0, create_revision: 0 },
          ],
          success: [put(k.applier, { id: journal.id, pid: process.pid }, leaseId)],
        }),
      );
      if (!took.succeeded) continue;
      await apply(host, k, journal);
      return { id: journal.id, action: 'completed', count: journal.count, digest: journal.digest, mode: journal.mode };
    }
    if (Date.now() > deadline) throw busy(j);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Delete stages no journal names (their restore died before its commit point). */
async function discardOrphans(host: JournalHost, k: Keys): Promise<RestoreApplied['recovered']> {
  const base = Buffer.from(k.stages);
  const res = await host.run('restore', () =>
    host.client.kv.range({ key: base, range_end: prefixEnd(base), keys_only: true, limit: 1 }),
  );
  const first = res.kvs[0];
  if (!first) return undefined;
  const id = first.key.subarray(base.length).toString().split('/')[0] ?? '';
  const stage = Buffer.from(k.stage(id));
  await host.run('restore', () => host.client.kv.deleteRange({ key: stage, range_end: prefixEnd(stage) }));
  const more = await discardOrphans(host, k);
  return more ?? { id, action: 'discarded' };
}

/** Give up a claim before its commit point: the journal (if still ours) and the stage are deleted. */
async function dropClaim(host: JournalHost, k: Keys, id: string, journalRev: string): Promise<void> {
  const stage = Buffer.from(k.stage(id));
  await host.run('restore', () =>
    host.client.kv.txn({
      compare: [{ key: k.journal, target: 2 /* mod */, result: 0, mod_revision: journalRev }],
      success: [
        { request_delete_range: { key: k.journal } },
        { request_delete_range: { key: stage, range_end: prefixEnd(stage) } },
      ],
    }),
  );
}

/** Steps 4 and 5 (see the file header); idempotent, so an interrupted run can be made again. */
async function apply(host: JournalHost, k: Keys, journal: Journal, guard?: Guard): Promise<number> {
  let cleared = 0;
  if (journal.mode === 'replace') for (const ns of await host.namespaces()) cleared += await host.clearNamespace(ns);
  let next = 0;
  const worker = async () => {
    for (let seq = next++; seq < journal.batches; seq = next++) {
      const kv = await read(host, k.batch(journal.id, seq));
      if (!kv)
        throw new RegistryError(
          'INTERNAL',
          `restore ${journal.id}: staged batch ${seq} is missing (the stage was deleted by hand?): restore the dump again`,
        );
      const entries = JSON.parse(kv.value.toString()) as Registration[];
      const results = await host.bulkRegister(entries, journal.guard ? applyRule(guard, entries) : always);
      // A guarded write refused by a holder: registered after the commit point, so later: it stands.
      const bad = results.find((r) => !r.ok && !(journal.guard && 'holder' in r));
      if (bad) {
        const why = 'error' in bad ? bad.error.message : 'a holder refused the write';
        throw new RegistryError(
          'INTERNAL',
          `restore ${journal.id}: a write failed (${why}): \`registry restore --resume\` makes the restore again`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const last = { ...journal, completedAt: Date.now() };
  await host.run('restore', () =>
    host.client.kv.txn({
      success: [
        { request_delete_range: { key: k.journal } },
        { request_delete_range: { key: k.applier } },
        put(k.last, last),
      ],
    }),
  );
  const stage = Buffer.from(k.stage(journal.id));
  await host.run('restore', () => host.client.kv.deleteRange({ key: stage, range_end: prefixEnd(stage) }));
  return cleared;
}

function read(host: JournalHost, key: Buffer): Promise<IKeyValue | undefined> {
  return host.run('restore', async () => (await host.client.kv.range({ key })).kvs[0]);
}

function put(key: Buffer, value: unknown, lease?: string): IRequestOp {
  return { request_put: { key, value: Buffer.from(JSON.stringify(value)), lease: lease ?? 0 } };
}

function busy(kv: IKeyValue | undefined): RegistryError {
  const j = kv ? (JSON.parse(kv.value.toString()) as Journal) : undefined;
  return new ConflictError(
    `another restore${j ? ` (${j.id}, ${j.state}, ${j.count} entries, started ${new Date(j.startedAt).toISOString()})` : ''} is running on this etcd prefix: wait for it to finish, then restore again`,
  );
}

function lostClaim(id: string): RegistryError {
  return new UnreachableError(
    `restore ${id} lost its claim on etcd before its commit point (lease expired: etcd unreachable or this process stalled): nothing was applied; restore again`,
  );
}

function prefixEnd(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    const byte = out[i] ?? 0xff;
    if (byte < 0xff) {
      out[i] = byte + 1;
      return out.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
