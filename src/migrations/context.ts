/**
 * What every phase works with: the config file it steers (profiles `migrate-*`, the `default`
 * profile), the journal and its lock, the stores it opens (each behind a registry service, for
 * liveness), progress and log callbacks.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InvalidInputError, NoRegistryError, RegistryError } from '../backends/contract.js';
import { parseBackendUrl } from '../backends/open.js';
import { configTarget, loadConfig, saveConfig, type ConfigFile, type Profile } from '../config/profiles.js';
import { ProcessRegistry } from '../registry/service.js';
import { FileJournalStore, Journal, MigrationLock, type JournalStore } from './journal.js';

export const PROFILE = {
  source: 'migrate-source',
  hybrid: 'migrate-hybrid',
  target: 'migrate-target',
  distributed: 'migrate-distributed',
} as const;

export const JOURNAL_FILE = 'registry.migration.json';

export interface MigrationOptions {
  /** The config file (default: the one that applies here, else ./registry.config.json, created). */
  config?: string;
  /** The journal (default: registry.migration.json beside the config). */
  journal?: string;
  /** A journal storage other than a file (tests, embedders). */
  journalStore?: JournalStore;
  /** The local node name (liveness of local pids). */
  nodeName?: string;
  /** false: only read (verify, plan, status, --dry-run): a store that does not exist is not created (exit 6). */
  create?: boolean;
  onProgress?(label: string, done: number, total?: number): void;
  log?(msg: string): void;
}

/**
 * A store opened for a migration: the service in front of it (every read and write goes through
 * it) and the URL it was opened by.
 */
export interface OpenState {
  registry: ProcessRegistry;
  url: string;
}

export class Migration {
  readonly configPath: string;
  readonly journal: Journal;
  readonly lock: MigrationLock;
  readonly nodeName?: string;
  private readonly opened: ProcessRegistry[] = [];

  constructor(readonly opts: MigrationOptions = {}) {
    this.configPath = configTarget(opts.config);
    const journalPath = resolve(opts.journal ?? join(dirname(this.configPath), JOURNAL_FILE));
    const store = opts.journalStore ?? new FileJournalStore(journalPath);
    this.journal = new Journal(store, this.configPath);
    this.lock = new MigrationLock(`${store.location}.lock`);
    this.nodeName = opts.nodeName;
  }

  progress(label: string, done: number, total?: number): void {
    this.opts.onProgress?.(label, done, total);
  }

  log(msg: string): void {
    this.opts.log?.(msg);
  }

  /**
   * Open a store behind a service. `role` names it in errors: a store the journal points at that
   * has vanished is reported as such, not as a bare open failure.
   */
  async open(url: string, role?: string, backendOpts: Record<string, unknown> = {}): Promise<OpenState> {
    let registry: ProcessRegistry;
    try {
      registry = await ProcessRegistry.open({
        backend: url,
        backendOpts,
        nodeName: this.nodeName,
        cleanupInterval: 0,
        stats: false,
        create: this.opts.create,
      });
    } catch (err) {
      if (role && err instanceof RegistryError) {
        throw new RegistryError(
          err.code,
          `the migration journal ${this.journal.store.location} names ${url} as the ${role}, but it cannot be opened (${err.message}): restore it, or start over with another --journal`,
          { cause: err },
        );
      }
      throw err;
    }
    this.opened.push(registry);
    return { registry, url };
  }

  /**
   * Open a store a phase writes into (`hybrid --to`, `distribute --to`, `copy --to`). It must outlive
   * this process and be shared with the other processes that will use it: a backend without the
   * `persistent` capability (`memory:`, or a hybrid with such a side) is refused with exit 2 before
   * anything is written or any profile points at it. A node (`http://…`) is shared by definition.
   */
  async openTarget(url: string, flag: string, role?: string): Promise<OpenState> {
    const t = await this.open(url, role);
    const caps = t.registry.capabilities;
    if (!caps.persistent && !caps.remote) {
      throw new InvalidInputError(
        `${flag} ${url} is not a durable, shared store (the ${t.registry.backend.name} backend lives only as long as one process, so the migrated registrations would vanish when this command exits): use sqlite:PATH, etcd://… or a node's http://…`,
      );
    }
    return t;
  }

  /**
   * A plan's view of the store a phase will write into: opened when it exists; undefined when it
   * does not yet and this migration only reads (the phase itself creates it).
   */
  async peekTarget(url: string, flag: string): Promise<OpenState | undefined> {
    try {
      return await this.openTarget(url, flag);
    } catch (err) {
      if (err instanceof NoRegistryError && this.opts.create === false) return undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    const all = this.opened.splice(0);
    await Promise.allSettled(all.map((r) => r.close()));
  }

  // --- config profiles ---------------------------------------------------------------------------

  readConfig(): ConfigFile {
    return existsSync(this.configPath) ? loadConfig(this.configPath) : {};
  }

  private writeConfig(c: ConfigFile): void {
    saveConfig(this.configPath, c);
  }

  setProfile(name: string, profile: Profile | undefined): void {
    const c = this.readConfig();
    const profiles = { ...(c.profiles ?? {}) };
    if (profile) profiles[name] = profile;
    else delete profiles[name];
    this.writeConfig({ ...c, profiles });
  }

  /** Make `name` the default profile (undefined/null: none); returns the previous default. */
  setDefault(name: string | null | undefined): string | null {
    const c = this.readConfig();
    const prev = c.default ?? null;
    const next: ConfigFile = { ...c };
    if (name) next.default = name;
    else delete next.default;
    this.writeConfig(next);
    return prev;
  }

  defaultProfile(): string | null {
    return this.readConfig().default ?? null;
  }
}

/** Absolute paths for file URLs, so the config and journal do not depend on the working directory. */
export function normalizeUrl(url: string): string {
  const { info, location } = parseBackendUrl(url);
  if (info.file) return `${info.scheme}:${resolve(location)}`;
  return url.trim();
}
