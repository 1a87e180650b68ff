/**
 * `http://HOST:PORT`, `https://HOST:PORT` — a remote registry node (`registry serve`, the seed's
 * GenServer reached over the network). The node runs its own registry service, so this backend
 * declares `remote`: the node judges liveness of its own node name's entries (and sweeps them); the
 * local service judges only entries of its own node name (docs/node.md, liveness and signals).
 *
 * Requests go over node:http(s) with a keep-alive Agent (no per-call TCP handshake); the wire
 * protocol (paths, statuses, error bodies) is src/node/wire.ts, shared with the server.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import {
  type Backend,
  type BackendContext,
  type BucketDigests,
  type BulkResult,
  type Capabilities,
  type ChangeEvent,
  ClosedError,
  defaultCapabilities,
  type HealthReport,
  InvalidInputError,
  type ListOptions,
  type Meta,
  OutcomeUnknownError,
  type Page,
  type RegisterOptions,
  type RegisterOutcome,
  type Registration,
  RegistryError,
  type RestoreApplied,
  type RestorePlan,
  type SweepResult,
  UnreachableError,
  type UnregisterCondition,
  type UpdateOptions,
  type ServiceStats,
} from './contract.js';
import { API, fromWire, registrationPath, type WireError } from '../protocol/wire.js';

export const REMOTE_BACKEND = 'http';

export interface RemoteOptions {
  /** Bearer token (default: env REGISTRY_TOKEN). */
  token?: string;
  /** A file holding the token (first line). */
  tokenFile?: string;
  /** Per-request timeout in ms (default 10 s). */
  timeout?: number;
  /** Most sockets kept open to the node (default 64). */
  maxSockets?: number;
  /** PEM CA certificate(s) to trust for https (default: the system's). */
  ca?: string;
  /** Accept a self-signed certificate (tests only). */
  insecure?: boolean;
}

export function createRemoteBackend(location: string, opts: RemoteOptions, _ctx: BackendContext): Backend {
  return new RemoteBackend(location, opts);
}

interface Reply {
  status: number;
  body: unknown;
}

export class RemoteBackend implements Backend {
  readonly name = REMOTE_BACKEND;
  readonly url: string;
  readonly capabilities: Capabilities = {
    ...defaultCapabilities,
    remote: true,
    bulkRegister: true,
    watch: true,
    digest: true,
  };

  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly lib: typeof http | typeof https;
  private readonly headers: Record<string, string>;
  private readonly timeout: number;
  private readonly tlsOpts: { ca?: string; rejectUnauthorized?: boolean };
  private readonly watches = new Set<http.ClientRequest>();
  private closed = false;

  constructor(location: string, opts: RemoteOptions) {
    let u: URL;
    try {
      u = new URL(location);
    } catch (cause) {
      throw new InvalidInputError(
        `invalid node URL ${JSON.stringify(location)}: use http://HOST:PORT or https://HOST:PORT`,
        { cause },
      );
    }
    if (!u.port && !/^https?:$/.test(u.protocol)) throw new InvalidInputError(`invalid node URL ${location}`);
    this.base = u;
    this.url = `${u.protocol}//${u.host}`;
    const tls = u.protocol === 'https:';
    this.lib = tls ? https : http;
    const agentOpts = {
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 64,
      keepAliveMsecs: 1000,
      scheduling: 'lifo' as const,
    };
    this.tlsOpts = tls ? { ...(opts.ca ? { ca: opts.ca } : {}), rejectUnauthorized: !opts.insecure } : {};
    this.agent = tls ? new https.Agent({ ...agentOpts, ...this.tlsOpts }) : new http.Agent(agentOpts);
    this.timeout = opts.timeout ?? 10_000;
    let token = opts.token ?? (u.password ? decodeURIComponent(u.password) : undefined);
    if (!token && opts.tokenFile) {
      const [firstLine = ''] = readFileSync(opts.tokenFile, 'utf8').split(/\r?\n/, 1);
      token = firstLine.trim();
    }
    token ??= process.env.REGISTRY_TOKEN || undefined;
    this.headers = { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  }

  async register(entry: Registration, opts: RegisterOptions): Promise<RegisterOutcome> {
    const { namespace: _ns, key: _key, ...body } = wireEntry(entry) as Record<string, unknown>;
    // The node applies its service's rule (same process, or a dead holder). When that refuses but
    // the caller's rule accepts the holder (restore), replace exactly that holder: compare-and-swap.
    for (let attempt = 0; ; attempt++) {
      const r = await this.call('PUT', registrationPath(entry.namespace, entry.key), body);
      if (r.status === 201) return { ok: true, entry: r.body as Registration };
      const holder = (r.body as { holder?: Registration })?.holder;
      if (r.status === 409 && holder) {
        if (attempt < 3 && opts.replaceIf(holder)) {
          body.replace = { pid: holder.pid, node: holder.node, registeredAt: holder.registeredAt };
          continue;
        }
        return { ok: false, holder };
      }
      throw this.fail(r);
    }
  }

  async lookup(namespace: string, key: string): Promise<Registration | undefined> {
    const r = await this.call('GET', registrationPath(namespace, key));
    if (r.status === 200) return r.body as Registration;
    if (r.status === 404 && (r.body as WireError)?.code === 'NOT_FOUND') return undefined;
    throw this.fail(r);
  }

  async unregister(namespace: string, key: string, cond?: UnregisterCondition): Promise<boolean> {
    const q = new URLSearchParams();
    if (cond?.pid !== undefined) q.set('pid', String(cond.pid));
    if (cond?.node !== undefined) q.set('node', cond.node);
    if (cond?.registeredAt !== undefined) q.set('registeredAt', String(cond.registeredAt));
    const qs = q.size ? `?${q}` : '';
    return (this.ok(await this.call('DELETE', registrationPath(namespace, key) + qs)) as { removed: boolean }).removed;
  }

  async list(namespace: string, opts: ListOptions): Promise<Page> {
    const q = new URLSearchParams();
    if (opts.after !== undefined) q.set('after', opts.after);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    for (const [f, v] of opts.where ?? []) q.append('where', `${f}=${v}`);
    const qs = q.size ? `?${q}` : '';
    return this.ok(await this.call('GET', registrationPath(namespace) + qs)) as Page;
  }

  async updateMetadata(
    namespace: string,
    key: string,
    meta: Meta,
    opts: UpdateOptions,
  ): Promise<Registration | undefined> {
    const r = await this.call(opts.merge ? 'PATCH' : 'PUT', registrationPath(namespace, key, '/meta'), meta);
    if (r.status === 404 && (r.body as WireError)?.code === 'NOT_FOUND') return undefined;
    return this.ok(r) as Registration;
  }

  async count(namespace?: string): Promise<number> {
    const qs = namespace === undefined ? '' : `?ns=${encodeURIComponent(namespace)}`;
    return (this.ok(await this.call('GET', `${API}/count${qs}`)) as { count: number }).count;
  }

  async namespaces(): Promise<string[]> {
    return (this.ok(await this.call('GET', `${API}/namespaces`)) as { namespaces: string[] }).namespaces;
  }

  async healthCheck(): Promise<HealthReport> {
    const r = await this.call('GET', `${API}/health`);
    if (r.status === 200 || (r.status === 503 && (r.body as HealthReport)?.status))
      return { ...(r.body as HealthReport), node: this.url };
    throw this.fail(r);
  }

  close(): void {
    this.closed = true;
    for (const w of this.watches) w.destroy();
    this.watches.clear();
    this.agent.destroy();
  }

  async bulkRegister(entries: Registration[], opts: RegisterOptions & { atomic?: boolean }): Promise<BulkResult[]> {
    const body = { atomic: !!opts.atomic, entries: entries.map(wireEntry) };
    // Compact results: a success says only what the node changed in the entry we sent.
    const wire = (
      this.ok(await this.call('POST', `${API}/bulk?results=compact`, body)) as {
        results: Array<{ ok: boolean; holder?: Registration; error?: WireError } & Partial<Registration>>;
      }
    ).results;
    const out: BulkResult[] = new Array(wire.length);
    for (const [i, w] of wire.entries()) {
      const sent = entries[i];
      if (sent === undefined)
        throw new RegistryError(
          'INTERNAL',
          `registry node ${this.url} answered ${wire.length} results for ${entries.length} entries`,
        );
      if (w.ok) {
        const { ok: _ok, ...changed } = w;
        out[i] = { ok: true, entry: { ...sent, pidStart: sent.pidStart ?? null, ...changed } };
      } else if (w.holder) {
        // The node refused a live holder; the caller's rule may still accept it (restore).
        out[i] =
          !opts.atomic && opts.replaceIf(w.holder) ? await this.register(sent, opts) : { ok: false, holder: w.holder };
      } else out[i] = { ok: false, error: fromWire(400, w.error, this.url) };
    }
    return out;
  }

  /**
   * A staged restore (src/node/restore.ts): open a stage, upload the entries in chunks, then one
   * commit the node applies all or nothing. A client killed before the commit leaves the store as
   * it was (the node discards the stage); once sent, the commit runs to its end on the node.
   */
  async restoreAll(plan: RestorePlan): Promise<RestoreApplied> {
    const opened = this.ok(
      await this.call('POST', `${API}/restore`, {
        mode: plan.mode,
        count: plan.count,
        digest: plan.digest,
        id: plan.id,
        // Register's rule inside the node's commit (import --atomic): the node judges with its own rule.
        ...(plan.guard ? { guard: 'register' } : {}),
      }),
    ) as { id: string; lastCommitted?: { at: number } | null; lastDiscarded?: RestoreRecordWire | null };
    const id = encodeURIComponent(opened.id);
    const d = opened.lastDiscarded;
    const recovered =
      d && (!opened.lastCommitted || d.at > opened.lastCommitted.at)
        ? { id: d.id, action: 'discarded' as const, count: d.count, digest: d.digest, mode: d.mode }
        : undefined;
    try {
      let offset = 0;
      for await (const batch of plan.batches(2000)) {
        this.ok(await this.call('POST', `${API}/restore/${id}/entries`, { offset, entries: batch.map(wireEntry) }));
        offset += batch.length;
      }
    } catch (err) {
      await this.call('DELETE', `${API}/restore/${id}`).catch(() => undefined);
      throw err;
    }
    const r = this.ok(await this.call('POST', `${API}/restore/${id}/commit`, undefined, 10 * 60_000)) as {
      cleared: number;
    };
    return { cleared: r.cleared, ...(recovered ? { recovered } : {}) };
  }

  async digest(namespace: string, buckets: number): Promise<BucketDigests> {
    return this.ok(
      await this.call('GET', `${API}/digest/${encodeURIComponent(namespace)}?buckets=${buckets}`),
    ) as BucketDigests;
  }

  async clearNamespace(namespace: string): Promise<number> {
    return (this.ok(await this.call('DELETE', registrationPath(namespace))) as { removed: number }).removed;
  }

  async cleanup(): Promise<SweepResult> {
    return this.ok(await this.call('POST', `${API}/cleanup`)) as SweepResult;
  }

  /**
   * Ask the node to signal the holder of a key (POST …/signal): the node checks pid and start time
   * itself right before the kill. An entry not of the node's node name comes back as the holder.
   */
  async signal(namespace: string, key: string, sig: NodeJS.Signals | number) {
    const r = await this.call('POST', registrationPath(namespace, key, '/signal'), { signal: String(sig) });
    const b = r.body as {
      holder?: Registration;
      namespace: string;
      key: string;
      pid: number;
      node: string;
      signal: string;
    };
    if (r.status === 200) return { ok: true as const, sent: b };
    if (r.status === 400 && b?.holder) return { ok: false as const, holder: b.holder };
    throw this.fail(r);
  }

  /** The node's own service counters (`GET /v1/stats`): what `registry stats -b http://…` shows. */
  async stats(): Promise<ServiceStats> {
    return this.ok(await this.call('GET', `${API}/stats`)) as ServiceStats;
  }

  /** Stream the node's change feed (NDJSON); resolves once the node accepted the watch. */
  watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): Promise<() => void> {
    this.check();
    const q = new URLSearchParams();
    if (opts.namespace) q.set('ns', opts.namespace);
    if (opts.sinceRevision !== undefined) q.set('since', String(opts.sinceRevision));
    return new Promise((resolve, reject) => {
      let stopped = false;
      let established = false;
      const req = this.lib.request(this.target(`${API}/watch${q.size ? `?${q}` : ''}`), {
        method: 'GET',
        headers: { ...this.headers, accept: 'application/x-ndjson' },
        agent: false,
        ...this.tlsOpts,
      });
      const stop = () => {
        stopped = true;
        this.watches.delete(req);
        req.destroy();
      };
      this.watches.add(req);
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          collect(res).then((text) => {
            this.watches.delete(req);
            const err = fromWire(res.statusCode ?? 0, safeJson(text), this.url);
            if (res.statusCode === 410) {
              onError?.(err);
              resolve(() => {});
            } else reject(err);
          }, reject);
          return;
        }
        established = true;
        resolve(stop);
        let rest = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          rest += chunk;
          let nl: number;
          while ((nl = rest.indexOf('\n')) >= 0) {
            const line = rest.slice(0, nl);
            rest = rest.slice(nl + 1);
            if (!line) continue;
            const e = safeJson(line) as ChangeEvent & { type: string; message?: string };
            if (e?.type === 'put' || e?.type === 'delete') onEvent(e);
            else if (e?.type === 'error')
              onError?.(new RegistryError('INTERNAL', `watch on ${this.url}: ${e.message}`));
          }
        });
        res.on('end', () => {
          this.watches.delete(req);
          if (!stopped)
            onError?.(
              new UnreachableError(
                `the change feed of ${this.url} ended (node closed?): watch again from the last revision`,
              ),
            );
        });
      });
      req.on('error', (err) => {
        this.watches.delete(req);
        if (stopped) return;
        const e = this.network(err);
        if (established) onError?.(e);
        else reject(e);
      });
      req.end();
    });
  }

  /** Move the node to another backend at runtime (POST /v1/admin/switch); the switch report. */
  async switchNode(
    backend: string,
    backendOpts: Record<string, unknown> = {},
    timeoutMs = 10 * 60_000,
  ): Promise<Record<string, unknown>> {
    return this.ok(await this.call('POST', `${API}/admin/switch`, { backend, backendOpts }, timeoutMs)) as Record<
      string,
      unknown
    >;
  }

  /** The node's own view: GET /v1/stats (uptime, in-flight, operations) and /v1/health. */
  async nodeStatus(): Promise<{ stats: Record<string, unknown>; health: HealthReport }> {
    const [stats, health] = await Promise.all([
      this.call('GET', `${API}/stats`).then((r) => this.ok(r)),
      this.healthCheck(),
    ]);
    return { stats: stats as Record<string, unknown>, health };
  }

  // --- helpers ---------------------------------------------------------------------------------

  private check(): void {
    if (this.closed) throw new ClosedError('the remote backend');
  }

  private target(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * One request; statuses are the caller's. A network failure before the request could reach the
   * node (refused, no route) is UnreachableError: nothing was done. A write (any method but GET)
   * whose answer is lost after it was sent (connection reset, timeout, the node killed mid-call)
   * may or may not have been applied: OutcomeUnknownError, never retried (a retried unregister
   * would answer `false` for its own removal). Only reads are retried on a kept-alive socket the
   * node closed as it was reused.
   */
  private call(method: string, path: string, body?: unknown, timeout = this.timeout): Promise<Reply> {
    this.check();
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return this.send(method, path, payload, true, timeout);
  }

  private send(
    method: string,
    path: string,
    payload: string | undefined,
    retry: boolean,
    timeout: number,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string | number> = { ...this.headers };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(payload);
      }
      const req = this.lib.request({
        protocol: this.base.protocol,
        hostname: this.base.hostname.replace(/^\[|\]$/g, ''),
        port: this.base.port,
        path,
        method,
        headers,
        agent: this.agent,
      });
      const write = method !== 'GET';
      // Whether the request may have reached the node: its socket was connected (reused, or the
      // connect / TLS handshake finished) before the failure.
      let sent = false;
      req.on('socket', (s) => {
        if (!s.connecting) sent = true;
        else s.once(this.base.protocol === 'https:' ? 'secureConnect' : 'connect', () => (sent = true));
      });
      const failed = (err: Error): RegistryError => (write && sent ? this.lost(method, path, err) : this.network(err));
      req.setTimeout(timeout, () =>
        req.destroy(
          new UnreachableError(`registry node ${this.url} did not answer ${method} ${path} within ${timeout} ms`),
        ),
      );
      req.on('response', (res) => {
        collect(res).then(
          (text) => {
            if (res.statusCode === 401 || res.statusCode === 403)
              return reject(fromWire(res.statusCode, safeJson(text), this.url));
            resolve({ status: res.statusCode ?? 0, body: text ? safeJson(text) : undefined });
          },
          (err: Error) => reject(failed(err)),
        );
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the node closed just as we reused it: retry a read once on a fresh one.
        if (!write && retry && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          this.send(method, path, payload, false, timeout).then(resolve, reject);
          return;
        }
        reject(failed(err));
      });
      req.end(payload);
    });
  }

  private network(err: Error): RegistryError {
    if (err instanceof RegistryError) return err;
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    return new UnreachableError(
      `cannot reach registry node ${this.url} (${code}): is \`registry serve\` running there?`,
      { cause: err },
    );
  }

  /** A write sent whose answer was lost: it may or may not have been applied. */
  private lost(method: string, path: string, err: Error): RegistryError {
    const why = err instanceof RegistryError ? err.message : ((err as NodeJS.ErrnoException).code ?? err.message);
    return new OutcomeUnknownError(
      `${method} ${path}: outcome unknown: the request reached registry node ${this.url} but its answer was lost (${why}); it may have been applied (whole, or not at all): look the key up to see which`,
      { cause: err },
    );
  }

  private ok(r: Reply): unknown {
    if (r.status >= 200 && r.status < 300) return r.body;
    throw this.fail(r);
  }

  private fail(r: Reply): RegistryError {
    return fromWire(r.status, r.body, this.url);
  }
}

/** A restore the node discarded or committed (src/node/restore.ts). */
interface RestoreRecordWire {
  id: string;
  mode: string;
  count: number;
  digest: string;
  at: number;
}

/** An entry as the node takes it: a pid start the client does not know is left to the node. */
function wireEntry(e: Registration): Partial<Registration> {
  const w: Partial<Registration> = {
    namespace: e.namespace,
    key: e.key,
    pid: e.pid,
    node: e.node,
    meta: e.meta,
    registeredAt: e.registeredAt,
    updatedAt: e.updatedAt,
  };
  if (e.pidStart != null) w.pidStart = e.pidStart;
  return w;
}

function collect(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const [only] = chunks;
      resolve(chunks.length === 1 && only ? only.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('ECONNRESET')));
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { code: 'INTERNAL', message: text.slice(0, 200) };
  }
}
