/**
 * The registry node (issue 3), on loopback, servers in their own processes (bench/node-server.ts)
 * and the load generated here, so on a 2-core machine the server has a core of its own:
 *
 * 1. lookups/s through the node vs a bare node:http server answering the same lookups from a Map,
 *    64 keep-alive connections driven by a minimal raw-socket client (so the client is cheap and
 *    the servers are what is measured); p99 latency of both. Targets ≥ 0.7× and p99 ≤ 2×.
 * 2. the bulk endpoint into the memory backend: registrations/s (target ≥ 200,000/s).
 * 3. remote-backend lookups from the library (ProcessRegistry over http://) vs a raw keep-alive
 *    node:http client against the same node, 64 concurrent callers. Target ≥ 0.5×.
 * 4. lookups/s through a node serving them from its lookup cache vs the same node without it,
 *    over memory and over SQLite (issue 14 §4).
 * 5. the same over etcd (a 3-member loopback cluster): the node with its lookup cache, the node
 *    without it, and raw etcd3 linearizable gets of the same keys from this process, 64 in flight.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { comparePair, fmtRate, nth, opsLabel, percentile, type BenchContext, type BenchModule } from './harness.js';
import { Etcd3 } from 'etcd3';
import { ProcessRegistry } from '../src/registry/service.js';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';

const SERVER = fileURLToPath(new URL('./node-server.js', import.meta.url));
const CONNS = 64;

async function startServer(
  mode: 'node' | 'bare',
  n: number,
  extra: string[] = [],
): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [SERVER, mode, String(n), ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${mode} server exited ${code}`)));
  });
  return { port, child };
}

async function stopServer(s: { child: ChildProcess }): Promise<void> {
  if (s.child.exitCode !== null) return;
  const e = once(s.child, 'exit');
  s.child.kill('SIGTERM');
  await e;
}

/**
 * One keep-alive connection speaking just enough HTTP/1.1 for GET with Content-Length answers.
 * The servers close a connection idle for 5 s (their keep-alive timeout), which happens to one
 * side's connections while the other side's round runs at full size: a request then finds the
 * socket closed (or answered by an unsolicited 408 before the close), so it reconnects first; a
 * GET whose answer was lost to a close (the server closed just as it was sent) is sent again on a
 * new connection (GETs are idempotent). Before this the
 * client wrote into a closed socket and waited for ever (the bench hung at full size).
 */
class RawConn {
  private buf: Buffer = Buffer.alloc(0);
  private sock: net.Socket | undefined;
  private pending: {
    req: Buffer;
    resolve: (status: number) => void;
    reject: (e: Error) => void;
    tries: number;
  } | null = null;
  /** Connections opened again after the server closed one (all RawConns). */
  static reconnects = 0;
  private constructor(private readonly port: number) {}
  static async open(port: number): Promise<RawConn> {
    const c = new RawConn(port);
    await c.connect();
    return c;
  }
  private async connect(): Promise<void> {
    const s = net.connect(this.port, '127.0.0.1');
    s.setNoDelay(true);
    s.on('data', (c: Buffer) => s === this.sock && this.onData(c));
    s.on('error', () => undefined); // ECONNRESET/EPIPE: handled on 'close'
    s.on('close', () => s === this.sock && this.onClose());
    this.sock = s;
    this.buf = Buffer.alloc(0);
    await once(s, 'connect');
  }
  private usable(): boolean {
    const s = this.sock;
    return !!s && !s.destroyed && s.writable && !s.readableEnded;
  }
  async request(req: Buffer): Promise<number> {
    if (!this.usable()) {
      RawConn.reconnects++;
      await this.connect();
    }
    return new Promise((resolve, reject) => {
      this.pending = { req, resolve, reject, tries: 0 };
      this.sock!.write(req);
    });
  }
  private onClose(): void {
    this.sock = undefined;
    const p = this.pending;
    if (!p) return;
    if (++p.tries > 3) {
      this.pending = null;
      p.reject(new Error('the server closed the connection 4 times with a request outstanding'));
      return;
    }
    RawConn.reconnects++;
    this.connect().then(
      () => this.sock!.write(p.req),
      (e: Error) => {
        this.pending = null;
        p.reject(e);
      },
    );
  }
  private onData(c: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buf.length < end + 4 + len) return;
    const status = Number(head.slice(9, 12));
    this.buf = this.buf.subarray(end + 4 + len);
    if (status === 408) {
      // The server timed the idle connection out (answered with 408 and closes it): a request sent
      // just before is re-sent on a new connection by onClose.
      this.sock?.destroy();
      return;
    }
    const p = this.pending;
    this.pending = null;
    if (!p) throw new Error(`an answer (${status}) with no request waiting for it`);
    p.resolve(status);
  }
  close(): void {
    const s = this.sock;
    this.sock = undefined;
    s?.destroy();
  }
}

/**
 * A request on a keep-alive agent, sent again once when a reused socket was reset (the server
 * closed it idle just as it was reused: nothing was processed) — Node's documented pattern.
 */
function requestRetrying(
  opts: http.RequestOptions,
  body: string | undefined,
  onResponse: (res: http.IncomingMessage) => void,
  onError: (e: Error) => void,
  retried = false,
): void {
  const req = http.request(opts, onResponse);
  req.on('error', (e: NodeJS.ErrnoException) => {
    if (!retried && req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE'))
      requestRetrying(opts, body, onResponse, onError, true);
    else onError(e);
  });
  req.end(body);
}

/** `perConn` requests on each connection, concurrently; latencies (ms) pushed to `lat`. */
async function drive(conns: RawConn[], reqs: Buffer[], perConn: number, lat: number[]): Promise<void> {
  await Promise.all(
    conns.map(async (c, ci) => {
      for (let i = 0; i < perConn; i++) {
        const t0 = performance.now();
        const status = await c.request(nth(reqs, (ci * perConn + i) % reqs.length));
        lat.push(performance.now() - t0);
        if (status !== 200) throw new Error(`lookup answered ${status}`);
      }
    }),
  );
}

const bench: BenchModule = {
  name: 'node',
  async run(ctx) {
    const n = ctx.quick ? 2000 : 10_000;
    const perConn = ctx.quick ? 50 : 200;
    const reqs = Array.from({ length: n }, (_, i) =>
      Buffer.from(`GET /v1/registrations/bench/key-${(i * 7919) % n} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1'),
    );

    // --- 1. lookups through the node vs a bare node:http + Map --------------------------------
    const nodeSrv = await startServer('node', n);
    const bareSrv = await startServer('bare', n);
    try {
      const nodeConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(nodeSrv.port)));
      const bareConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(bareSrv.port)));
      const latNode: number[] = [];
      const latBare: number[] = [];
      const r = await comparePair(
        () => drive(bareConns, reqs, perConn, latBare),
        () => drive(nodeConns, reqs, perConn, latNode),
        { opsPerBatch: CONNS * perConn, async: true, rounds: ctx.quick ? 3 : 7, minMs: ctx.quick ? 200 : 600 },
      );
      const p99n = percentile(latNode, 99);
      const p99b = percentile(latBare, 99);
      ctx.add({
        name: `lookups/s, ${CONNS} connections`,
        value: opsLabel(r.subjectNs),
        baseline: `${opsLabel(r.baselineNs)} (bare node:http + Map)`,
        ratio: r.ratio,
        target: '>= 0.7',
      });
      ctx.add({
        name: 'lookup p99 latency (node/bare)',
        value: `${p99n.toFixed(2)} ms`,
        baseline: `${p99b.toFixed(2)} ms (bare node:http + Map)`,
        ratio: p99n / p99b,
        target: '<= 2.0',
        note: `p50 ${percentile(latNode, 50).toFixed(2)} vs ${percentile(latBare, 50).toFixed(2)} ms`,
      });
      for (const c of [...nodeConns, ...bareConns]) c.close();

      // --- 3. remote backend from the library vs a raw keep-alive node:http client ---------------
      const url = `http://127.0.0.1:${nodeSrv.port}`;
      const reg = await ProcessRegistry.open({ backend: url, namespace: 'bench', cleanupInterval: 0, stats: true });
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
      const rawGet = (key: string) =>
        new Promise<unknown>((resolve, reject) =>
          requestRetrying(
            {
              host: '127.0.0.1',
              port: nodeSrv.port,
              path: `/v1/registrations/bench/${encodeURIComponent(key)}`,
              agent,
            },
            undefined,
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c) => chunks.push(c));
              res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
            },
            reject,
          ),
        );
      const per = ctx.quick ? 20 : 60;
      const callers = (get: (k: string) => Promise<unknown>) => () =>
        Promise.all(
          Array.from({ length: CONNS }, async (_, ci) => {
            for (let i = 0; i < per; i++)
              if (!(await get(`key-${(ci * per + i) % n}`))) throw new Error('lookup missed');
          }),
        ).then(() => undefined);
      const lib = await comparePair(
        callers(rawGet),
        callers((k) => reg.lookup(k)),
        { opsPerBatch: CONNS * per, async: true, rounds: ctx.quick ? 3 : 7, minMs: ctx.quick ? 200 : 500 },
      );
      ctx.add({
        name: 'remote-backend lookups/s (library)',
        value: opsLabel(lib.subjectNs),
        baseline: `${opsLabel(lib.baselineNs)} (raw keep-alive node:http client)`,
        ratio: lib.ratio,
        target: '>= 0.5',
      });
      await reg.close();
      agent.destroy();
    } finally {
      await stopServer(nodeSrv);
      await stopServer(bareSrv);
    }

    // --- 4. lookups through the node with its lookup cache vs without (same store, same run) -----
    for (const store of ['memory:', 'sqlite'] as const) {
      const dir = store === 'sqlite' ? mkdtempSync(join(tmpdir(), 'procreg-bench-cache-')) : undefined;
      const url = dir ? `sqlite:${join(dir, 'n.db')}` : store;
      const on = await startServer('node', n, ['on', url]);
      const off = await startServer('node', n, ['off', dir ? `sqlite:${join(dir, 'n2.db')}` : url]);
      try {
        const onConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(on.port)));
        const offConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(off.port)));
        const latOn: number[] = [];
        const latOff: number[] = [];
        const r = await comparePair(
          () => drive(offConns, reqs, perConn, latOff),
          () => drive(onConns, reqs, perConn, latOn),
          { opsPerBatch: CONNS * perConn, async: true, rounds: ctx.quick ? 3 : 7, minMs: ctx.quick ? 200 : 600 },
        );
        const stats = (await (await fetch(`http://127.0.0.1:${on.port}/v1/stats`)).json()) as {
          optimization?: { cache?: { hitRate: number | null } };
        };
        ctx.add({
          name: `lookups/s with the lookup cache, ${CONNS} connections (${dir ? 'sqlite' : 'memory'} node)`,
          value: opsLabel(r.subjectNs),
          baseline: `${opsLabel(r.baselineNs)} (the same node without the cache)`,
          ratio: r.ratio,
          note: `p99 ${percentile(latOn, 99).toFixed(2)} vs ${percentile(latOff, 99).toFixed(2)} ms; hit rate ${stats.optimization?.cache?.hitRate ?? '-'}`,
        });
        for (const c of [...onConns, ...offConns]) c.close();
      } finally {
        await stopServer(on);
        await stopServer(off);
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }

    // --- 5. the lookup cache on an etcd node: with it, without it, and raw etcd3 gets (same run) --
    await etcdCacheRows(ctx, n, reqs, perConn);

    // --- 2. bulk endpoint into memory, beside a bare node:http server storing the same bodies ----
    const bulkSrv = await startServer('node', 1);
    const bareBulk = await startServer('bare', 1);
    try {
      const batch = 10_000;
      const pool = ctx.quick ? 4 : 10;
      const now = Date.now();
      const bodies = Array.from({ length: pool }, (_, b) =>
        JSON.stringify({
          entries: Array.from({ length: batch }, (_, i) => ({
            namespace: 'bulk',
            key: `b${b}-k${i}`,
            pid: 1000 + (i % 1000),
            node: 'bench-remote',
            meta: { role: 'worker', i },
            registeredAt: now,
            updatedAt: now,
          })),
        }),
      );
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const post = (port: number, body: string) =>
        new Promise<void>((resolve, reject) =>
          requestRetrying(
            {
              host: '127.0.0.1',
              port,
              path: '/v1/bulk?results=compact',
              method: 'POST',
              agent,
              headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            },
            // Re-sent only on a reset reused socket (never processed); the bodies re-register anyway.
            body,
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (c) => (text += c));
              res.on('end', () => {
                if (res.statusCode !== 200 || text.includes('"ok":false'))
                  reject(new Error(`bulk answered ${res.statusCode}: ${text.slice(0, 200)}`));
                else resolve();
              });
            },
            reject,
          ),
        );
      // Two requests in flight: the server parses one while the client sends the next. The pool
      // rotates, so the node's store grows to pool × batch and later rounds re-register (same pid).
      const rotating = (port: number) => {
        let next = 0;
        return () => Promise.all([0, 1].map(() => post(port, nth(bodies, next++ % pool)))).then(() => undefined);
      };
      const r = await comparePair(rotating(bareBulk.port), rotating(bulkSrv.port), {
        opsPerBatch: 2 * batch,
        async: true,
        rounds: ctx.quick ? 3 : 7,
        minMs: ctx.quick ? 200 : 400,
      });
      const rate = 1e9 / r.subjectNs;
      ctx.add({
        name: `bulk endpoint into memory (${batch}/request, compact results)`,
        value: `${fmtRate(rate)} reg/s`,
        baseline: '200k reg/s (issue target)',
        ratio: rate / 200_000,
        target: '>= 1.0',
      });
      ctx.add({
        name: 'bulk endpoint vs bare server storing the same bodies',
        value: `${fmtRate(rate)} reg/s`,
        baseline: `${fmtRate(1e9 / r.baselineNs)} reg/s (bare node:http: JSON.parse + Map.set)`,
        ratio: r.ratio,
        note: 'shows how much of the bulk cost is HTTP + JSON on this machine now',
      });
      agent.destroy();
    } finally {
      await stopServer(bulkSrv);
      await stopServer(bareBulk);
    }
  },
};

export default bench;

/**
 * Row 5: an etcd node answering lookups with its lookup cache (`--lookup-cache`) against the same
 * kind of node without it (each on its own prefix of one 3-member cluster, preloaded alike), and
 * the uncached node against raw etcd3 linearizable gets of the same stored keys, 64 in flight from
 * this process: what an uncached lookup costs over the round trip it cannot avoid.
 */
async function etcdCacheRows(ctx: BenchContext, n: number, reqs: Buffer[], perConn: number): Promise<void> {
  const cluster = await startEtcdCluster({ members: 3 });
  const raw = new Etcd3({ hosts: cluster.endpoints.map((e) => `http://${e}`) });
  try {
    const on = await startServer('node', n, ['on', cluster.url('/bench-cache-on')]);
    const off = await startServer('node', n, ['off', cluster.url('/bench-cache-off')]);
    try {
      const onConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(on.port)));
      const offConns = await Promise.all(Array.from({ length: CONNS }, () => RawConn.open(off.port)));
      const rounds = ctx.quick ? 3 : 7;
      const minMs = ctx.quick ? 200 : 600;
      // Warm the cache (every key once) so the rows compare steady states.
      await drive(onConns, reqs, Math.ceil(n / CONNS), []);
      const latOn: number[] = [];
      const latOff: number[] = [];
      const cached = await comparePair(
        () => drive(offConns, reqs, perConn, latOff),
        () => drive(onConns, reqs, perConn, latOn),
        { opsPerBatch: CONNS * perConn, async: true, rounds, minMs },
      );
      const stats = (await (await fetch(`http://127.0.0.1:${on.port}/v1/stats`)).json()) as {
        optimization?: { cache?: { hitRate: number | null } };
      };
      ctx.add({
        name: `lookups/s with the lookup cache, ${CONNS} connections (etcd node, 3 members)`,
        value: opsLabel(cached.subjectNs),
        baseline: `${opsLabel(cached.baselineNs)} (the same kind of node without the cache)`,
        ratio: cached.ratio,
        note: `p99 ${percentile(latOn, 99).toFixed(2)} vs ${percentile(latOff, 99).toFixed(2)} ms; hit rate ${stats.optimization?.cache?.hitRate ?? '-'}`,
      });
      // The uncached node against raw linearizable gets of the keys it stores.
      const keys = Array.from({ length: n }, (_, i) => `/bench-cache-off/r/bench/key-${(i * 7919) % n}`);
      const first = await raw.get(nth(keys, 0)).string();
      if (!first) throw new Error(`raw etcd3 get found no ${nth(keys, 0)}: the key layout changed`);
      const rawGets = async () => {
        await Promise.all(
          Array.from({ length: CONNS }, async (_, ci) => {
            for (let i = 0; i < perConn; i++)
              if ((await raw.get(nth(keys, (ci * perConn + i) % n)).buffer()) === null)
                throw new Error('raw get missed');
          }),
        );
      };
      const latOff2: number[] = [];
      const vsRaw = await comparePair(rawGets, () => drive(offConns, reqs, perConn, latOff2), {
        opsPerBatch: CONNS * perConn,
        async: true,
        rounds,
        minMs,
      });
      ctx.add({
        name: `lookups/s without the cache, ${CONNS} connections (etcd node, 3 members)`,
        value: opsLabel(vsRaw.subjectNs),
        baseline: `${opsLabel(vsRaw.baselineNs)} (raw etcd3 linearizable gets, ${CONNS} in flight)`,
        ratio: vsRaw.ratio,
        note: `with the cache: ${opsLabel(cached.subjectNs)} = ${(vsRaw.baselineNs / cached.subjectNs).toFixed(2)}× raw gets; client reconnects after idle closes: ${RawConn.reconnects}`,
      });
      for (const c of [...onConns, ...offConns]) c.close();
    } finally {
      await stopServer(on);
      await stopServer(off);
    }
  } finally {
    raw.close();
    await cluster.stop();
  }
}
