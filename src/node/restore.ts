/**
 * Staged restores on a node (docs/restore.md): a client uploads a dump in chunks into a staging
 * file identified by a restore id, then one commit request applies it all or nothing — the node's
 * store in one local transaction (SQLite, memory), or etcd through its journal. The store is never
 * touched before the commit, and the commit runs to its end on the node whatever happens to the
 * client. A stage that stops receiving chunks (the client was killed) is discarded after
 * `idleMs`, never half applied. The node remembers the last committed and the last discarded
 * restore for `GET /v1/health` (`nodeInfo.restores`): what the next command reports.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, InvalidInputError, RegistryError } from '../backends/contract.js';
import { DUMP_VERSION, restore, type DumpHeader, type RestoreResult } from '../registry/dump.js';
import { registerRule } from '../registry/restore-guard.js';
import type { ProcessRegistry } from '../registry/service.js';
import { testPause } from '../core/test-pause.js';

/** Most stages open at once. */
const MAX_STAGES = 4;

interface Stage {
  id: string;
  mode: 'merge' | 'replace';
  count: number;
  digest: string;
  file: string;
  fd: number | undefined;
  staged: number;
  startedAt: number;
  touchedAt: number;
  committing: boolean;
  /** An `import --atomic`: register's rule, checked inside the commit (src/registry/restore-guard.ts). */
  guard: boolean;
}

export interface RestoreRecord {
  id: string;
  mode: 'merge' | 'replace';
  count: number;
  digest: string;
  /** Entries received before it was discarded. */
  staged?: number;
  at: number;
  reason?: string;
}

export class RestoreStages {
  private readonly stages = new Map<string, Stage>();
  private lastCommitted: RestoreRecord | null = null;
  private lastDiscarded: RestoreRecord | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly registry: ProcessRegistry,
    private readonly idleMs = 30_000,
  ) {
    this.timer = setInterval(() => this.expire(), Math.min(1000, idleMs));
    this.timer.unref();
  }

  /** Open a stage: the dump's header (mode, count, digest) now, its entries in chunks. */
  begin(b: { mode: 'merge' | 'replace'; count: number; digest: string; id?: string; guard?: 'register' }): {
    id: string;
    lastCommitted: RestoreRecord | null;
    lastDiscarded: RestoreRecord | null;
  } {
    this.expire();
    if (this.stages.size >= MAX_STAGES)
      throw new ConflictError(`${MAX_STAGES} restores are already staging on this node: wait for them`);
    const id = b.id ?? `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new InvalidInputError(`invalid restore id ${JSON.stringify(id)}`);
    if (this.stages.has(id)) throw new ConflictError(`restore ${id} is already staging`);
    if (b.guard && b.mode !== 'merge')
      throw new InvalidInputError('a guarded restore merges: it cannot replace the store');
    const file = join(tmpdir(), `.procreg-stage-${process.pid}-${id}.ndjson`);
    const fd = openSync(file, 'wx', 0o600);
    const header: DumpHeader = {
      procreg: 'dump',
      version: DUMP_VERSION,
      count: b.count,
      digest: b.digest,
      namespaces: [],
      createdAt: Date.now(),
      source: `restore ${id}`,
    };
    writeAll(fd, `${JSON.stringify(header)}\n`);
    const now = Date.now();
    this.stages.set(id, {
      id,
      mode: b.mode,
      count: b.count,
      digest: b.digest,
      file,
      fd,
      staged: 0,
      startedAt: now,
      touchedAt: now,
      committing: false,
      guard: b.guard === 'register',
    });
    return { id, lastCommitted: this.lastCommitted, lastDiscarded: this.lastDiscarded };
  }

  /** Append a chunk; `offset` must equal the entries staged so far (a replayed chunk is refused). */
  append(id: string, offset: number, entries: unknown[]): { staged: number } {
    const s = this.get(id);
    if (s.committing) throw new ConflictError(`restore ${id} is being committed: it takes no more entries`);
    if (offset !== s.staged)
      throw new ConflictError(`restore ${id} has ${s.staged} entries staged, not ${offset}: start the restore again`);
    if (s.staged + entries.length > s.count)
      throw new InvalidInputError(`restore ${id}: more entries than the ${s.count} its header announced`);
    writeAll(s.fd!, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    s.staged += entries.length;
    s.touchedAt = Date.now();
    return { staged: s.staged };
  }

  /**
   * Apply the stage all or nothing. The count and digest are checked again on the node (an upload
   * that lost or changed a chunk is refused, nothing applied); the stage is gone afterwards either way.
   */
  async commit(id: string): Promise<RestoreResult> {
    const s = this.get(id);
    if (s.committing) throw new ConflictError(`restore ${id} is already being committed`);
    s.committing = true;
    closeSync(s.fd!);
    s.fd = undefined;
    try {
      const reg = this.registry;
      if (s.guard) await testPause('node-import-commit');
      const r = await restore(reg, s.file, {
        mode: s.mode,
        id: s.id,
        label: `the upload of restore ${id}`,
        // The client checked every key before uploading; the node checks again inside its commit.
        ...(s.guard ? { guard: registerRule((e) => reg.isAlive(e)) } : {}),
      });
      this.lastCommitted = { id, mode: s.mode, count: s.count, digest: s.digest, at: Date.now() };
      return r;
    } catch (err) {
      this.record(s, err instanceof RegistryError ? err.message : String(err));
      throw err;
    } finally {
      this.drop(s);
    }
  }

  /** Discard a stage (the client gave up). */
  abort(id: string): { discarded: boolean } {
    const s = this.stages.get(id);
    if (!s || s.committing) return { discarded: false };
    this.record(s, 'aborted by the client');
    this.drop(s);
    return { discarded: true };
  }

  /** What `GET /v1/health` shows. */
  info() {
    return {
      staging: [...this.stages.values()].map((s) => ({
        id: s.id,
        mode: s.mode,
        count: s.count,
        staged: s.staged,
        committing: s.committing,
        idleMs: Date.now() - s.touchedAt,
      })),
      lastCommitted: this.lastCommitted,
      lastDiscarded: this.lastDiscarded,
    };
  }

  /** One line for `registry health`: the last restore committed, and one discarded or staging since. */
  summary(): string | undefined {
    const parts: string[] = [];
    const c = this.lastCommitted;
    if (c) parts.push(`last committed ${describe(c)}: the store holds it`);
    const d = this.lastDiscarded;
    if (d && (!c || d.at > c.at))
      parts.push(
        `restore ${d.id} discarded before its commit (${d.staged} of ${d.count} entries staged; ${d.reason}): nothing of it was applied`,
      );
    for (const s of this.stages.values())
      parts.push(
        s.committing
          ? `restore ${s.id} committing (${s.count} entries)`
          : `restore ${s.id} staging (${s.staged} of ${s.count} entries, idle ${Math.round((Date.now() - s.touchedAt) / 1000)} s): nothing applied yet`,
      );
    return parts.length ? parts.join('; ') : undefined;
  }

  close(): void {
    clearInterval(this.timer);
    for (const s of [...this.stages.values()]) if (!s.committing) this.drop(s);
  }

  private get(id: string): Stage {
    const s = this.stages.get(id);
    if (!s)
      throw new RegistryError(
        'NOT_FOUND',
        `no restore ${id} is staging on this node (discarded after ${this.idleMs / 1000} s without a chunk, or the node restarted): start the restore again`,
      );
    return s;
  }

  private expire(): void {
    const now = Date.now();
    for (const s of [...this.stages.values()]) {
      if (s.committing || now - s.touchedAt < this.idleMs) continue;
      this.record(s, `no chunk for ${Math.round((now - s.touchedAt) / 1000)} s (client gone)`);
      this.drop(s);
    }
  }

  private record(s: Stage, reason: string): void {
    this.lastDiscarded = {
      id: s.id,
      mode: s.mode,
      count: s.count,
      digest: s.digest,
      staged: s.staged,
      at: Date.now(),
      reason,
    };
  }

  private drop(s: Stage): void {
    this.stages.delete(s.id);
    if (s.fd !== undefined) closeSync(s.fd);
    s.fd = undefined;
    try {
      unlinkSync(s.file);
    } catch {
      // already gone
    }
  }
}

function describe(r: RestoreRecord): string {
  return `restore ${r.id} (${r.mode}, ${r.count} entries, digest ${r.digest.slice(0, 16)}…) at ${new Date(r.at).toISOString()}`;
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
}
