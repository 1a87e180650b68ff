/**
 * The backend contract: everything a storage engine must do to hold a procreg registry.
 *
 * One file, on purpose (design §2). A backend is *storage with conditional writes*; the registry
 * service above it (src/registry/service.ts) owns validation, liveness, lazy cleanup and counters,
 * and hands the backend the one decision it needs inside its atomic section: `replaceIf`.
 *
 * Methods may return a value or a Promise of it (`MaybePromise`): the memory and SQLite backends
 * answer synchronously, so the service can offer `lookupSync` without a Promise per call.
 */

/** A value now, or later. Synchronous backends return plain values. */
export type MaybePromise<T> = T | Promise<T>;

/** JSON object metadata (anything else is invalid metadata). */
export type Meta = { [field: string]: unknown };

/** One registration: a name in a namespace bound to a process on a node. */
export interface Registration {
  /** Isolation scope, `[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}`. */
  namespace: string;
  /** The name: 1–512 bytes of UTF-8, no control characters. */
  key: string;
  /** OS process id, integer > 0. */
  pid: number;
  /** The host that owns the pid. */
  node: string;
  /** A JSON object, ≤ 64 KiB serialized. */
  meta: Meta;
  /** Epoch milliseconds of the first registration by this pid. */
  registeredAt: number;
  /** Epoch milliseconds of the last write (register again, metadata update). */
  updatedAt: number;
  /** Start time of the process on its node (Linux: /proc/<pid>/stat field 22), detects pid reuse. */
  pidStart?: number | null;
}

/** The outcome of a conditional register. */
export type RegisterOutcome =
  { ok: true; entry: Registration; replaced?: Registration } | { ok: false; holder: Registration };

export interface RegisterOptions {
  /**
   * Called inside the backend's atomic section when the key is already held. Return true to
   * overwrite the holder (same pid, or a dead holder), false to refuse with the holder.
   * Remote backends, whose far side runs its own service, may ignore it.
   */
  replaceIf(existing: Registration): boolean;
}

/** A condition on the current holder for `unregister` (compare-and-delete). */
export interface UnregisterCondition {
  pid?: number;
  registeredAt?: number;
  node?: string;
}

export interface ListOptions {
  /** Exclusive cursor: only keys ordered after this one. */
  after?: string;
  /** Page size (the service bounds it). */
  limit?: number;
  /** Equality filters on metadata fields (a list value matches when it contains the value). */
  where?: Array<[field: string, value: string]>;
}

export interface Page {
  items: Registration[];
  /** The cursor for the next page, absent on the last page. */
  next?: string;
  /** How a `where` listing was answered (backends that say): an index, or a scan; entries read. */
  plan?: ListPlan;
}

/** A listing read `scanned` index entries of `field`, or scanned `scanned` rows (docs/indexes.md). */
export type ListPlan = { method: 'index'; field: string; scanned: number } | { method: 'scan'; scanned: number };

export interface UpdateOptions {
  /** RFC 7386 JSON merge patch instead of replacement. */
  merge?: boolean;
  /** Called with the final metadata before it is written; throws to refuse (size limits). */
  validate?(meta: Meta): void;
}

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthReport {
  status: HealthStatus;
  /** Rows stored (alive or not yet swept). */
  registrations: number;
  alive: number;
  dead: number;
  /** Bytes the backend holds in memory (or on disk, for a file backend: see backend fields). */
  memoryBytes: number;
  /** Epoch ms of the last sweep, or null. */
  lastCleanup: number | null;
  /** Why the status is not healthy, spelled out. */
  reasons: string[];
  /** True when the store could not be reached at all (endpoints down, quorum lost): the CLI reports `unreachable`, exit 6. */
  unreachable?: boolean;
  /** Backend-specific fields (file sizes, members, leader...). */
  [extra: string]: unknown;
}

/** Dead-share thresholds of design §2: < 10 % healthy, < 30 % degraded, else unhealthy. */
export function statusFromDeadShare(alive: number, dead: number): { status: HealthStatus; reasons: string[] } {
  const total = alive + dead;
  const share = total === 0 ? 0 : dead / total;
  if (share < 0.1) return { status: 'healthy', reasons: [] };
  const pct = (share * 100).toFixed(1);
  if (share < 0.3)
    return { status: 'degraded', reasons: [`${pct}% of registrations are dead (>= 10%): run \`registry cleanup\``] };
  return { status: 'unhealthy', reasons: [`${pct}% of registrations are dead (>= 30%): run \`registry cleanup\``] };
}

/** A change observed on a backend's feed. */
export interface ChangeEvent {
  /** Monotonically increasing revision. */
  revision: number;
  type: 'put' | 'delete';
  namespace: string;
  key: string;
  /** The new value for `put`. */
  entry?: Registration;
}

/** Per-bucket digests of a namespace, computed where the data lives (see src/registry/digest.ts). */
export interface BucketDigests {
  buckets: number;
  /** Hex digest per bucket, index = bucket number. */
  digests: string[];
  /** Entries per bucket. */
  counts: number[];
}

/** Per-entry result of a bulk register, in input order. */
export type BulkResult = RegisterOutcome | { ok: false; error: RegistryError };

/**
 * Optional capabilities. Every flag defaults to `false` (see `defaultCapabilities`), so a new flag
 * breaks no backend; the service falls back to per-item calls where one is missing.
 */
export interface Capabilities {
  /** Methods answer synchronously (no Promise): enables `lookupSync` and skips per-key locks. Default false. */
  synchronous: boolean;
  /** `bulkRegister` is native (one transaction / one request). Default false. */
  bulkRegister: boolean;
  /** `watch` streams a change feed with a monotonically increasing revision. Default false. */
  watch: boolean;
  /** `digest` computes per-bucket digests where the data lives. Default false. */
  digest: boolean;
  /** `list({where})` uses a native index instead of scanning. Default false. */
  findByMetadata: boolean;
  /** Data survives the process. Default false. */
  persistent: boolean;
  /** Data is shared by several machines. Default false. */
  distributed: boolean;
  /** The far side runs its own registry service (liveness, cleanup): the local service must not judge. Default false. */
  remote: boolean;
  /** `transaction` can run many writes all-or-nothing. Default false. */
  transactions: boolean;
  /**
   * Entries keep `pidStart` and `registeredAt`, so a signal can rule out a reused pid. Default true;
   * false for the legacy layout (no such columns): `signal` refuses its entries (exit 2).
   */
  startTimes: boolean;
}

export const defaultCapabilities: Capabilities = Object.freeze({
  synchronous: false,
  bulkRegister: false,
  watch: false,
  digest: false,
  findByMetadata: false,
  persistent: false,
  distributed: false,
  remote: false,
  transactions: false,
  startTimes: true,
});

/** What the service hands every backend factory. */
export interface BackendContext {
  /** The local node name (default `os.hostname()`). */
  nodeName: string;
  /** Judges a stored registration: false when its process is known dead. */
  isAlive(entry: Registration): boolean;
  /** The opener is a long-lived process (its sweep runs: cleanupInterval > 0); undefined = unknown. Lease backends tie its registrations to its lifetime. */
  longLived?: boolean;
  /**
   * false: the opener only reads, so a store that does not exist is not created (file backends
   * throw `NoRegistryError`, exit 6, and leave no file or folder behind). Default true.
   */
  create?: boolean;
  /**
   * Compares two stores (live entries, canonical metadata): how many keys are only in `a`, only in
   * `b`, or differ. A backend that spans two stores (hybrid) reports it in its health; the layer
   * that opens backends supplies it (the migrations' `verifyStates`), so no backend imports it.
   */
  compareStores?(a: Backend, b: Backend): Promise<Divergence>;
}

/** What `inspect` found: counts by kind, a few samples, one line that says it. */
export interface InspectReport {
  counts: Record<string, number>;
  samples: Array<{ namespace: string; key: string; kind: string; detail: string }>;
  summary: string;
}

/** Namespaces to digest, each at its bucket count (`offThreadDigests`). */
export type DigestPlan = Array<{ namespace: string; buckets: number }>;

/** What `compact` did: the store's size before and after, and a word on how. */
export interface CompactReport {
  bytesBefore: number;
  bytesAfter: number;
  /** What was done, e.g. "analysed and vacuumed". */
  how: string;
}

/** The result of `BackendContext.compareStores`. */
export interface Divergence {
  onlyInA: number;
  onlyInB: number;
  differing: number;
}

/** The result of `checkIntegrity`: `ok` false with the problems found (at most a few). */
export interface IntegrityReport {
  ok: boolean;
  problems: string[];
  /** How long the check took. */
  checkMs: number;
}

/** The contract. Each method's result is documented in design §2. */
export interface Backend {
  /** The URL scheme name: `memory`, `sqlite`, `http`, `etcd`, `hybrid`, `legacy`. */
  readonly name: string;
  /** A printable location (URL with secrets removed). */
  readonly url: string;
  readonly capabilities: Capabilities;

  /** Store `entry` unless another holder exists and `replaceIf(holder)` says no. */
  register(entry: Registration, opts: RegisterOptions): MaybePromise<RegisterOutcome>;
  /** The stored entry (possibly dead: the service judges), or undefined. */
  lookup(namespace: string, key: string): MaybePromise<Registration | undefined>;
  /** Remove the key (only if it still matches `cond`); true when something was removed. Idempotent. */
  unregister(namespace: string, key: string, cond?: UnregisterCondition): MaybePromise<boolean>;
  /** A page of stored entries ordered by key (byte order of UTF-8), possibly including dead ones. */
  list(namespace: string, opts: ListOptions): MaybePromise<Page>;
  /** Replace (or merge-patch) the metadata; the new entry, or undefined when absent. */
  updateMetadata(
    namespace: string,
    key: string,
    meta: Meta,
    opts: UpdateOptions,
  ): MaybePromise<Registration | undefined>;
  /** Stored entries in a namespace (or all namespaces when undefined), dead included. */
  count(namespace?: string): MaybePromise<number>;
  /** Live entries (judged by `BackendContext.isAlive` once per process, not per row), exact; read-only. */
  countLive?(namespace?: string): MaybePromise<number>;
  /** Namespaces holding at least one entry, sorted. */
  namespaces(): MaybePromise<string[]>;
  /** Status, counts and backend-specific fields; `unhealthy` when the store cannot be reached. */
  healthCheck(): MaybePromise<HealthReport>;
  /** Stores that can be damaged on disk: a structural check (SQLite `PRAGMA quick_check`) before a full read. */
  checkIntegrity?(): MaybePromise<IntegrityReport>;
  /** Release everything; later calls fail with `ClosedError`. */
  close(): MaybePromise<void>;

  /** capability `bulkRegister`: register many, results in input order; `atomic` = all or nothing. */
  bulkRegister?(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): MaybePromise<BulkResult[]>;
  /** capability `watch`: changes after `sinceRevision`; returns a stop function. */
  watch?(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): MaybePromise<() => void>;
  /** capability `watch`: the feed's current revision (a watch from it misses nothing after it). */
  currentRevision?(): MaybePromise<number>;
  /** A lookup with the feed revision it reflects (lets a cache refuse a read older than an event). */
  lookupAt?(namespace: string, key: string): MaybePromise<{ entry: Registration | undefined; revision: number }>;
  /** capability `digest`: per-bucket digests of a namespace, computed next to the data. */
  digest?(namespace: string, buckets: number): MaybePromise<BucketDigests>;
  /**
   * capability `digest`, optional: a digester of several namespaces from one snapshot that runs
   * off the caller's thread (SQLite: a worker thread on its own connection), so two stores are
   * digested in parallel. undefined when the store is too small for that to pay.
   */
  offThreadDigests?(): ((plan: DigestPlan) => Promise<Map<string, BucketDigests>>) | undefined;
  /**
   * Compact the store after a bulk change (SQLite: ANALYZE, PRAGMA optimize, VACUUM, WAL
   * truncated): its size before and after, in bytes. The migration's optimize phase calls it.
   */
  compact?(): MaybePromise<CompactReport>;
  /**
   * The store's own anomalies (legacy: keys the two tables disagree on, dead rows, stale index and
   * cache rows): what `migrate wrap` reports.
   */
  inspect?(): MaybePromise<InspectReport>;
  /**
   * The raw stored view: every live entry read straight from storage by the store's own rule, not
   * through paging (legacy: one join over both tables). `migrate wrap` proves the service's view equals it.
   */
  rawEntries?(): Iterable<Registration>;
  /** capability `remote`: the node's own view (its /v1/stats and /v1/health). */
  nodeStatus?(): Promise<{ stats: Record<string, unknown>; health: HealthReport }>;
  /** capability `remote`: move the node to another backend at runtime; the switch report. */
  switchNode?(
    backend: string,
    backendOpts?: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** capability `transactions`: run `fn` all-or-nothing (rolled back when it throws). */
  transaction?<T>(fn: () => T): T;
  /**
   * Restore a whole, already validated dump all or nothing (docs/restore.md): a node stages the
   * upload and swaps it in one local transaction, etcd stages it and commits through a journal.
   */
  restoreAll?(plan: RestorePlan): Promise<RestoreApplied>;
  /** Settle a restore a killed process left part way (etcd: complete it after its commit point, else discard it). */
  resumeRestore?(): Promise<RestoreApplied['recovered']>;
  /** Remove every entry of a namespace (restore --mode replace); returns how many. */
  clearNamespace?(namespace: string): MaybePromise<number>;
  /** The distinct processes of `node` (lets a sweep judge each pid once), with entry counts where cheap. */
  processes?(node: string): MaybePromise<ProcessSummary[]>;
  /** Remove every entry of these (dead) processes of `node`, all at once (a sweep); returns how many. */
  removeProcesses?(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>): MaybePromise<number>;
  /**
   * The next `limit` distinct processes of `node` after `after` (none: from the first), in index
   * order: lets a sweep walk the processes in slices that yield (src/registry/sweep.ts).
   */
  processesAfter?(
    node: string,
    after: Pick<ProcessSummary, 'pid' | 'pidStart'> | undefined,
    limit: number,
  ): MaybePromise<ProcessSummary[]>;
  /** Remove up to `limit` entries of one (dead) process of `node`; returns how many (fewer than `limit`: none left). */
  removeProcessEntries?(
    node: string,
    proc: Pick<ProcessSummary, 'pid' | 'pidStart'>,
    limit: number,
  ): MaybePromise<number>;
  /** Remember when the last sweep ran (persistent backends show it in health). */
  markCleanup?(at: number): MaybePromise<void>;
  /** Remote backends: ask the far side's service to sweep now. */
  cleanup?(): MaybePromise<SweepResult>;
  /**
   * Remote only: the far side signals the live process holding the key after checking it is still
   * the registered one, if the entry is of its own node name; otherwise it answers the holder
   * (`ok: false`) for the caller to judge (see ProcessRegistry.signal).
   */
  signal?(
    namespace: string,
    key: string,
    sig: NodeJS.Signals | number,
  ): Promise<
    | { ok: true; sent: { namespace: string; key: string; pid: number; node: string; signal: string } }
    | { ok: false; holder: Registration | undefined }
  >;
  /** Remote backends: the far side's service counters (a node's `GET /v1/stats`); a one-shot CLI has none of its own. */
  stats?(): MaybePromise<ServiceStats>;
}

/** A validated dump to restore (src/registry/dump.ts builds it). */
export interface RestorePlan {
  /** Unique id of this restore (staging area, journal). */
  id: string;
  mode: 'merge' | 'replace';
  /** The dump's header: entry count and digest (already checked against the entries). */
  count: number;
  digest: string;
  namespaces: string[];
  /** The dump's entries in batches, in file order; may be iterated more than once. */
  batches(size: number): AsyncIterable<Registration[]>;
  /** The entries synchronously (inside a synchronous transaction). */
  forEachSync(fn: (e: Registration) => void): void;
  /**
   * Merge by register's rule, checked inside the commit (`registry import --atomic`): an entry may
   * replace a holder only when `guard(holder, entry)` says so, and a holder that moved between the
   * caller's check and the commit is judged again there. One refusal fails the whole restore with
   * AlreadyRegisteredError (the holder), nothing written (src/registry/restore-guard.ts).
   */
  guard?: (holder: Registration, entry: Registration) => boolean;
  /**
   * One pass instead of a check then a read: the entries in batches as they are read and checked.
   * The iteration throws at a bad line, or after the last batch when the count or the digest does
   * not match: only for a backend that publishes nothing before the iteration has ended (SQLite's
   * staging table). Until then `count`, `digest` and `namespaces` are the header's claims.
   */
  readChecked?(size: number): AsyncIterable<Registration[]>;
}

/** What `restoreAll` did, and what it found of an earlier restore that had been interrupted. */
export interface RestoreApplied {
  cleared: number;
  /** An interrupted earlier restore this call settled first: completed (it had passed its commit point) or discarded. */
  recovered?: { id: string; action: 'completed' | 'discarded'; count?: number; digest?: string; mode?: string };
}

/** A registry service's counters as a node serves them at `GET /v1/stats` (src/registry/stats.ts). */
export interface ServiceStats {
  /** Epoch ms when the service started, and for how long it has run. */
  startedAt?: number;
  uptimeMs?: number;
  /** Per operation: count, errors (by code) and latency percentiles in ms (HDR histogram). */
  operations?: Record<
    string,
    {
      count: number;
      errors: number;
      errorCodes?: Record<string, number>;
      latencyMs: { samples?: number; p50: number; p90: number; p99: number; max: number; mean?: number };
    }
  >;
  /** Recent sweeps, newest last. */
  sweeps?: SweepResult[];
  /** Node fields (in-flight requests, watchers, revision, …) and optimization stats when present. */
  [extra: string]: unknown;
}

/** The result of one sweep of dead registrations. */
export interface SweepResult {
  /** Processes (or entries, for backends without `processes`) judged. */
  checked: number;
  /** Registrations removed. */
  removed: number;
  /** Epoch ms when the sweep finished. */
  at: number;
  durationMs: number;
}

/** One process as seen by `processes`. */
export interface ProcessSummary {
  pid: number;
  pidStart: number | null;
  /** Its entries, where the backend knows them without reading them (not on etcd: one marker per process). */
  count?: number;
}

/** A backend factory as registered in src/backends/open.ts. */
export type BackendFactory = (
  location: string,
  opts: Record<string, unknown>,
  ctx: BackendContext,
) => MaybePromise<Backend>;

// Typed errors (src/backends/errors.ts), part of the contract.
export * from './errors.js';
import type { RegistryError } from './errors.js';

/** Promise-or-value chaining without allocating a Promise for synchronous values. */
export function then<T, R>(v: MaybePromise<T>, f: (t: T) => MaybePromise<R>): MaybePromise<R> {
  return v instanceof Promise ? v.then(f) : f(v);
}
