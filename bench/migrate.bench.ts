/**
 * Migration figures of issue 6, each beside its raw baseline in the same run:
 * - `verify` of two 1,000,000-entry SQLite stores (equal) vs reading both raw (every row, every
 *   column, better-sqlite3 iterate): target ≤ 1.5× the time (throughput ratio ≥ 0.67); peak RSS of
 *   verify measured in a child process (target < 300 MB).
 * - `migrate copy` sqlite → sqlite of 1,000,000 entries (copyState: paged reads, liveness,
 *   bulk writes) vs a raw batched copy (iterate + prepared INSERT, 2000 rows per transaction).
 * BENCH_QUICK=1: 100,000 entries. BENCH_MIGRATE=etcd: only the sqlite → etcd copy figure.
 */
import type DatabaseT from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSqliteBackend, loadBetterSqlite } from '../src/backends/sqlite.js';
import type { Backend, BackendContext } from '../src/backends/contract.js';
import { copyState } from '../src/migrations/copy.js';
import { bucketCount, verifyStates } from '../src/migrations/verify.js';
import { ProcessRegistry } from '../src/registry/service.js';
import { comparePair, median, type BenchModule } from './harness.js';

const ctxOther: BackendContext = { nodeName: 'bench-local', isAlive: () => true };
/** The service in front of a bench store, read as another node's entries (every one alive), never closed by it. */
const view = (b: Backend) => new ProcessRegistry(b, { nodeName: 'bench-reader', cleanupInterval: 0, stats: false });

/** A procreg SQLite store with n entries over 4 namespaces (other node: liveness is trusted). */
function build(path: string, n: number): void {
  const b = createSqliteBackend(path, {}, ctxOther) as unknown as {
    db: DatabaseT.Database;
    close(): void;
  };
  const ins = b.db.prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  for (let s = 0; s < n; s += 20_000) {
    b.db.transaction(() => {
      for (let i = s; i < Math.min(n, s + 20_000); i++) {
        ins.run(
          `ns${i % 4}`,
          `svc-${String(i).padStart(8, '0')}`,
          1000 + (i % 30000),
          'node-a',
          JSON.stringify({ type: i % 3 ? 'worker' : 'api', i }),
          1.7e12 + i,
          1.7e12 + i,
          null,
        );
      }
    })();
  }
  b.db.pragma('wal_checkpoint(TRUNCATE)');
  b.close();
}

function readRaw(path: string): number {
  const db = new (loadBetterSqlite())(path, { readonly: true });
  let s = 0;
  for (const r of db
    .prepare('SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations')
    .iterate() as IterableIterator<{ key: string; meta: string; pid: number }>) {
    s += r.key.length + r.meta.length + r.pid;
  }
  db.close();
  return s;
}

function rm(path: string): void {
  for (const x of ['', '-wal', '-shm']) rmSync(path + x, { force: true });
}

const mod: BenchModule = {
  name: 'migrate',
  async run(ctx) {
    // BENCH_MIGRATE=etcd: only the sqlite → etcd copy figure.
    if (process.env.BENCH_MIGRATE === 'etcd') return etcdFigure(ctx);
    const N = ctx.quick ? 100_000 : 1_000_000;
    const a = join(ctx.dir, 'verify-a.db');
    const b = join(ctx.dir, 'verify-b.db');
    build(a, N);
    copyFileSync(a, b);
    const A = createSqliteBackend(a, {}, ctxOther);
    const B = createSqliteBackend(b, {}, ctxOther);
    const rounds = ctx.quick ? 3 : 3;

    // verify vs reading both raw
    const v = await comparePair(
      () => {
        readRaw(a);
        readRaw(b);
      },
      async () => {
        const r = await verifyStates(view(A), view(B));
        if (!r.equivalent) throw new Error('bench stores differ');
      },
      { opsPerBatch: 2 * N, rounds, minMs: 1, async: true },
    );
    // Peak RSS of a verify, in a child process of its own.
    const verifyJs = fileURLToPath(new URL('../src/migrations/verify.js', import.meta.url));
    const sqliteJs = fileURLToPath(new URL('../src/backends/sqlite.js', import.meta.url));
    const serviceJs = fileURLToPath(new URL('../src/registry/service.js', import.meta.url));
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { verifyStates } from ${JSON.stringify(verifyJs)};
         import { createSqliteBackend } from ${JSON.stringify(sqliteJs)};
         import { ProcessRegistry } from ${JSON.stringify(serviceJs)};
         const view = (b) => new ProcessRegistry(b, { nodeName: 'bench-reader', cleanupInterval: 0, stats: false });
         const ctx = { nodeName: 'bench-local', isAlive: () => true };
         const t0 = performance.now();
         const r = await verifyStates(view(createSqliteBackend(${JSON.stringify(a)}, {}, ctx)), view(createSqliteBackend(${JSON.stringify(b)}, {}, ctx)));
         process.stdout.write(JSON.stringify({ equivalent: r.equivalent, ms: performance.now() - t0, rssMB: process.resourceUsage().maxRSS / 1024 }));`,
      ],
      { encoding: 'utf8' },
    );
    if (!child.stdout) throw new Error(`verify child failed: ${child.stderr}`);
    const rss = JSON.parse(child.stdout) as { rssMB: number; equivalent: boolean };
    ctx.add({
      name: `verify: two ${N / 1000}k-entry sqlite stores (equal)`,
      value: `${((v.subjectNs * 2 * N) / 1e6).toFixed(0)} ms`,
      baseline: `${((v.baselineNs * 2 * N) / 1e6).toFixed(0)} ms reading both raw`,
      ratio: v.ratio,
      target: '>= 0.67',
      note: `time ${(1 / v.ratio).toFixed(2)}× raw (target ≤ 1.5×); peak RSS ${rss.rssMB.toFixed(0)} MB in a child (target < 300 MB)${rss.equivalent ? '' : ' CHILD VERIFY FAILED'}`,
    });

    // What an equal verify against a registry node moves: one BucketDigests body per namespace
    // (the answer of GET /v1/digest/{ns}?buckets=N), vs the NDJSON dump of the same store.
    let digestBytes = 0;
    for (const ns of A.namespaces() as string[]) {
      digestBytes += Buffer.byteLength(JSON.stringify(await A.digest!(ns, bucketCount(A.count(ns) as number))));
    }
    let dumpBytes = 0;
    {
      const db = new (loadBetterSqlite())(a, { readonly: true });
      for (const r of db
        .prepare('SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations')
        .iterate() as IterableIterator<Record<string, unknown>>) {
        const line = {
          namespace: r.namespace,
          key: r.key,
          pid: r.pid,
          node: r.node,
          meta: JSON.parse(r.meta as string),
          registeredAt: r.registered_at,
          updatedAt: r.updated_at,
          pidStart: r.pid_start,
        };
        dumpBytes += Buffer.byteLength(JSON.stringify(line)) + 1;
      }
      db.close();
    }
    // The same, measured on the wire: a real node over store A on port 0; the bytes its sockets
    // write for an equal verify (remote digests vs local B) and for a full listing (the dump's data).
    const { RegistryNode, openNodeRegistry } = await import('../src/node/server.js');
    const { createRemoteBackend } = await import('../src/backends/remote.js');
    const nodeReg = await openNodeRegistry({ backend: `sqlite:${a}`, cleanupInterval: 0 });
    const node = await RegistryNode.start({ registry: nodeReg, port: 0, logLevel: 'silent' });
    const sockets = new Set<Socket>();
    let closedBytes = 0;
    node.app.server.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => {
        closedBytes += sock.bytesWritten;
        sockets.delete(sock);
      });
    });
    const wire = () => closedBytes + [...sockets].reduce((n, s) => n + s.bytesWritten, 0);
    const remote = createRemoteBackend(node.url, {}, ctxOther);
    let wireVerify = 0;
    let wireList = 0;
    try {
      const before = wire();
      const r = await verifyStates(view(remote), view(B));
      wireVerify = wire() - before;
      if (!r.equivalent) throw new Error('verify through the node found differences');
      const before2 = wire();
      for (const ns of await remote.namespaces()) {
        let after: string | undefined;
        for (;;) {
          const page = await remote.list(ns, { after, limit: 10_000 });
          if (!page.next) break;
          after = page.next;
        }
      }
      wireList = wire() - before2;
    } finally {
      await remote.close();
      await node.close();
    }
    ctx.add({
      name: `verify against a node (equal, ${N / 1000}k entries): bytes over the wire`,
      value: `${(wireVerify / 1024).toFixed(0)} KiB`,
      baseline: `${(wireList / 1048576).toFixed(0)} MiB listing every entry through the same node (dump file: ${(dumpBytes / 1048576).toFixed(0)} MiB)`,
      ratio: wireVerify / wireList,
      target: '<= 0.01',
      note: `ratio = bytes the node wrote for the verify / for a full listing (measured on its sockets); digest bodies alone: ${(digestBytes / 1024).toFixed(0)} KiB = ${((100 * digestBytes) / dumpBytes).toFixed(2)} % of the dump`,
    });

    // migrate copy vs raw batched copy
    let k = 0;
    const c = await comparePair(
      () => {
        const dst = join(ctx.dir, `raw-copy-${k++}.db`);
        const d = createSqliteBackend(dst, {}, ctxOther) as unknown as {
          db: DatabaseT.Database;
          close(): void;
        };
        const src = new (loadBetterSqlite())(a, { readonly: true });
        const ins = d.db.prepare('INSERT INTO registrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
        const insertMany = d.db.transaction((rows: unknown[][]) => {
          for (const r of rows) ins.run(...r);
        });
        let batch: unknown[][] = [];
        for (const r of src
          .prepare(
            'SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations ORDER BY namespace, key',
          )
          .raw()
          .iterate() as IterableIterator<unknown[]>) {
          batch.push(r);
          if (batch.length === 2000) {
            insertMany(batch);
            batch = [];
          }
        }
        insertMany(batch);
        src.close();
        d.close();
        rm(dst);
      },
      async () => {
        const dst = join(ctx.dir, `copy-${k++}.db`);
        const d = createSqliteBackend(dst, {}, ctxOther);
        const r = await copyState(view(A), view(d), { batch: 2000 });
        if (r.copied !== N) throw new Error(`copied ${r.copied} of ${N}`);
        await d.close();
        rm(dst);
      },
      { opsPerBatch: N, rounds, minMs: 1, async: true },
    );
    ctx.add({
      name: `migrate copy sqlite → sqlite, ${N / 1000}k entries`,
      value: `${((c.subjectNs * N) / 1e6).toFixed(0)} ms`,
      baseline: `${((c.baselineNs * N) / 1e6).toFixed(0)} ms raw batched copy`,
      ratio: c.ratio,
      target: '>= 0.67',
      note: `time ${(1 / c.ratio).toFixed(2)}× raw (target ≤ 1.5×)`,
    });
    await A.close();
    await B.close();
    if (process.env.BENCH_NO_ETCD !== '1') await etcdFigure(ctx);
  },
};

/**
 * `migrate copy` sqlite → etcd (a real 3-member cluster on loopback) vs raw etcd3 batched txns
 * of the same rows (sequential txns of 120 puts, one key per entry: the row as JSON). Target ≥ 0.5×.
 */
async function etcdFigure(ctx: Parameters<BenchModule['run']>[0]): Promise<void> {
  const { startEtcdCluster } = await import('../test/support/etcd-cluster.js');
  const { openBackend } = await import('../src/backends/open.js');
  const { Etcd3 } = await import('etcd3');
  const M = ctx.quick ? 10_000 : 100_000;
  const src = join(ctx.dir, 'etcd-src.db');
  build(src, M);
  const S = createSqliteBackend(src, {}, ctxOther);
  // Every round on a fresh cluster (etcd slows down as its database grows, so a shared cluster
  // favours whichever side ran first); baseline and subject alternate which goes first. The ratio
  // is the median of the per-round ratios (each pair ran on the same cluster).
  const rounds = ctx.quick ? 3 : 5;
  const base: number[] = [];
  const subj: number[] = [];
  const ratios: number[] = [];
  const baseline = async (client: InstanceType<typeof Etcd3>): Promise<void> => {
    const db = new (loadBetterSqlite())(src, { readonly: true });
    const rows = db
      .prepare(
        'SELECT namespace, key, pid, node, meta, registered_at, updated_at, pid_start FROM registrations ORDER BY namespace, key',
      )
      .all() as Array<Record<string, unknown>>;
    db.close();
    for (let i = 0; i < rows.length; i += 120) {
      const success = rows.slice(i, i + 120).map((r) => ({
        request_put: {
          key: Buffer.from(`/bench-raw/${r.namespace}/${r.key}`),
          value: Buffer.from(JSON.stringify(r)),
        },
      }));
      await client.kv.txn({ success });
    }
  };
  const subject = async (url: string): Promise<void> => {
    const dst = await openBackend(url, {}, ctxOther);
    const r = await copyState(view(S), view(dst), { batch: 2000 });
    if (r.copied !== M) throw new Error(`copied ${r.copied} of ${M}`);
    await dst.close();
  };
  const time = async (f: () => Promise<void>): Promise<number> => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const cluster = await startEtcdCluster({ members: 3 });
      const client = new Etcd3({ hosts: cluster.endpoints.map((e) => `http://${e}`) });
      try {
        let b: number;
        let t: number;
        if (round % 2 === 0) {
          b = await time(() => baseline(client));
          t = await time(() => subject(cluster.url('/bench-copy')));
        } else {
          t = await time(() => subject(cluster.url('/bench-copy')));
          b = await time(() => baseline(client));
        }
        base.push(b);
        subj.push(t);
        ratios.push(b / t);
      } finally {
        client.close();
        await cluster.stop();
      }
    }
    ctx.add({
      name: `migrate copy sqlite → etcd (3 members), ${M / 1000}k entries`,
      value: `${median(subj).toFixed(0)} ms`,
      baseline: `${median(base).toFixed(0)} ms raw etcd3 txns of 120 puts`,
      ratio: median(ratios),
      target: '>= 0.5',
      note: `per-round ratios ${ratios.map((r) => r.toFixed(2)).join(' ')} (each round a fresh 3-member cluster). Baseline: 1 key per entry (the row as JSON), blind puts, one txn at a time; procreg: create-if-absent txns of the registration + its metadata-index key (60 entries per 120 ops), plus one marker per process (30k processes here) in a nested create-if-absent txn, up to 32 txns in flight per batch, 3 batches of 2000 in flight`,
    });
  } finally {
    await S.close();
  }
}

export default mod;
