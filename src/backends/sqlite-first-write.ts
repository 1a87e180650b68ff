/**
 * The sqlite: backend of a file that does not exist yet (split from sqlite.ts): created by its first
 * write (split from sqlite.ts).
 */
import { resolve } from 'node:path';
import {
  type Backend,
  type BackendContext,
  ClosedError,
  InvalidInputError,
  type ListOptions,
  type Meta,
  type ProcessSummary,
  type RegisterOptions,
  type Registration,
  type RestorePlan,
  type UnregisterCondition,
  type UpdateOptions,
} from './contract.js';
import { SQLITE_BACKEND, SQLITE_CAPABILITIES, SqliteBackend, type SqliteOptions } from './sqlite.js';
import { offThreadDigester } from './sqlite-digest.js';

/**
 * A `sqlite:` file that does not exist yet, created by its first write (the REPL opened on a new
 * file): until then a read fails as a read-only command's does (NoRegistryError, exit 6), unless
 * another process has created the file meanwhile, which it then opens.
 */
export function createSqliteBackendOnFirstWrite(location: string, opts: SqliteOptions, ctx: BackendContext): Backend {
  return new SqliteOnFirstWrite(location, opts, ctx);
}

class SqliteOnFirstWrite implements Backend {
  readonly name = SQLITE_BACKEND;
  readonly url: string;
  readonly capabilities = SQLITE_CAPABILITIES;
  private inner: SqliteBackend | undefined;
  private closed = false;

  constructor(
    private readonly location: string,
    private readonly opts: SqliteOptions,
    private readonly ctx: BackendContext,
  ) {
    if (!location) throw new InvalidInputError('sqlite: needs a file path, e.g. sqlite:./registry.db');
    this.url = `sqlite:${resolve(location)}`;
  }

  private open(create: boolean): SqliteBackend {
    if (this.closed) throw new ClosedError(`the sqlite backend (${resolve(this.location)})`);
    return (this.inner ??= new SqliteBackend(this.location, { ...this.opts, create }, { ...this.ctx, create }));
  }

  /** Reads: the store if it exists by now. */
  private get r(): SqliteBackend {
    return this.open(false);
  }

  /** Writes: the store, created if need be. */
  private get w(): SqliteBackend {
    return this.open(true);
  }

  register(entry: Registration, opts: RegisterOptions) {
    return this.w.register(entry, opts);
  }
  lookup(namespace: string, key: string) {
    return this.r.lookup(namespace, key);
  }
  unregister(namespace: string, key: string, cond?: UnregisterCondition) {
    return this.w.unregister(namespace, key, cond);
  }
  list(namespace: string, opts: ListOptions) {
    return this.r.list(namespace, opts);
  }
  updateMetadata(namespace: string, key: string, meta: Meta, opts: UpdateOptions) {
    return this.w.updateMetadata(namespace, key, meta, opts);
  }
  count(namespace?: string) {
    return this.r.count(namespace);
  }
  countLive(namespace?: string) {
    return this.r.countLive(namespace);
  }
  namespaces() {
    return this.r.namespaces();
  }
  healthCheck() {
    return this.r.healthCheck();
  }
  checkIntegrity() {
    return this.r.checkIntegrity();
  }
  bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }) {
    return this.w.bulkRegister(entries, opts);
  }
  transaction<T>(fn: () => T): T {
    return this.w.transaction(fn);
  }
  clearNamespace(namespace: string) {
    return this.w.clearNamespace(namespace);
  }
  processes(node: string) {
    return this.r.processes(node);
  }
  removeProcesses(node: string, procs: Array<Pick<ProcessSummary, 'pid' | 'pidStart'>>) {
    return this.w.removeProcesses(node, procs);
  }
  processesAfter(node: string, after: Pick<ProcessSummary, 'pid' | 'pidStart'> | undefined, limit: number) {
    return this.r.processesAfter(node, after, limit);
  }
  removeProcessEntries(node: string, proc: Pick<ProcessSummary, 'pid' | 'pidStart'>, limit: number) {
    return this.w.removeProcessEntries(node, proc, limit);
  }
  digest(namespace: string, buckets: number) {
    return this.r.digest(namespace, buckets);
  }
  offThreadDigests() {
    return offThreadDigester(resolve(this.location));
  }
  compact() {
    return this.w.compact();
  }
  restoreAll(plan: RestorePlan) {
    return this.w.restoreAll(plan);
  }
  async resumeRestore() {
    return this.w.resumeRestore();
  }
  markCleanup(at: number) {
    return this.w.markCleanup(at);
  }
  watch(...args: Parameters<SqliteBackend['watch']>) {
    return this.r.watch(...args);
  }
  currentRevision() {
    return this.r.currentRevision();
  }
  lookupAt(namespace: string, key: string) {
    return this.r.lookupAt(namespace, key);
  }
  close(): void {
    this.closed = true;
    this.inner?.close();
  }
}
