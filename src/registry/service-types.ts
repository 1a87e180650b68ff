/** The options and handle types of the registry service (src/registry/service.ts re-exports them). */
import type { Meta, Registration } from '../backends/contract.js';
import type { OpenBackendOptions } from '../backends/open.js';

export interface OpenOptions extends OpenBackendOptions {
  /** Backend URL (`memory:`, `sqlite:PATH`, `http://…`, `etcd://…`); default: the SQLite default file. */
  backend?: string;
  /** Options passed to the backend factory (cleanupInterval, leaseTtl, …). */
  backendOpts?: Record<string, unknown>;
  /** The local node name (default `os.hostname()`). */
  nodeName?: string;
  /** Default namespace for calls that do not name one (default `default`). */
  namespace?: string;
  /**
   * Periodic sweep of dead local registrations, in ms (default `backendOpts.cleanupInterval` or
   * 30 s); 0 disables it. One-shot CLI calls pass 0: the long-lived processes sweep.
   */
  cleanupInterval?: number;
  /** Record operation counters and latencies (default true). */
  stats?: boolean;
  /** false: only read — a store that does not exist is not created (NoRegistryError, exit 6). Default true. */
  create?: boolean;
  /**
   * Serve `lookup` from the cache the change feed keeps coherent (src/registry/lookup-cache.ts).
   * Default: on for long-lived services (cleanupInterval > 0: the REPL, a node, a library) whose
   * backend has a change feed with revisions, off for one-shot CLI calls; false turns it off, true
   * turns it on even without a feed (then only this service's writes and the TTL bound staleness).
   */
  cache?: boolean;
}

export interface CallOptions {
  namespace?: string;
}

/** Remove only a holder that matches (compare-and-delete). */
export interface UnregisterCallOptions extends CallOptions {
  pid?: number;
  node?: string;
  registeredAt?: number;
}

export interface RegisterCallOptions extends CallOptions {
  /** The node owning the pid (default: this node). Other nodes' pids are not checked here. */
  node?: string;
  /** Known process start time (default: read from /proc for local pids). */
  pidStart?: number | null;
}

export interface ListCallOptions extends CallOptions {
  after?: string;
  limit?: number;
  where?: Array<[string, string]>;
}

/** A handle on a name, like Elixir's `{:via, Registry, {reg, key}}`. */
export interface Via {
  readonly namespace: string;
  readonly key: string;
  /** The pid holding the name, or undefined. */
  whereis(): Promise<number | undefined>;
  /** Register `pid` under the name. */
  register(pid: number, meta?: Meta): Promise<Registration>;
  /** Send a signal to the local process holding the name; false when nobody holds it. */
  signal(sig?: NodeJS.Signals | number): Promise<boolean>;
  unregister(): Promise<boolean>;
}
