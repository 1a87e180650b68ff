/**
 * Server side of bench/node.bench.ts, run as its own process so the load generator does not
 * starve it: `node dist/bench/node-server.js node|bare N` preloads N registrations and prints
 * `PORT <n>`. `node` = a registry node over memory (or `node N on|off URL`: with or without the
 * lookup cache, over another backend); `bare` = a plain node:http server answering
 * the same lookups from a Map, and storing POSTed bulk bodies in it (the baselines).
 */
import http from 'node:http';
import type { Registration } from '../src/backends/contract.js';
import { openNodeRegistry, RegistryNode } from '../src/node/server.js';

const [mode, nText, cacheArg, backendArg] = process.argv.slice(2);
const n = Number(nText ?? 10_000);
const now = Date.now();
const entries: Registration[] = Array.from({ length: n }, (_, i) => ({
  namespace: 'bench',
  key: `key-${i}`,
  pid: 1000 + (i % 1000),
  node: 'bench-remote',
  meta: { role: 'worker', i },
  registeredAt: now,
  updatedAt: now,
  pidStart: null,
}));

if (mode === 'node') {
  // Optional: `on`/`off` the lookup cache (default: the node's own choice), a backend URL (default memory:).
  const registry = await openNodeRegistry({
    backend: backendArg ?? 'memory:',
    cleanupInterval: 0,
    nodeName: 'bench-node',
    ...(cacheArg === 'on' || cacheArg === 'off' ? { cache: cacheArg === 'on' } : {}),
  });
  const res = await registry.bulkRegister(entries);
  if (res.some((r) => !r.ok)) throw new Error('preload failed');
  const node = await RegistryNode.start({ registry, port: 0, logLevel: 'warn', bulkBodyLimit: 256 * 1024 * 1024 });
  process.stdout.write(`PORT ${new URL(node.url).port}\n`);
  process.on('SIGTERM', () => void node.close().then(() => process.exit(0)));
} else {
  const map = new Map(entries.map((e) => [`${e.namespace}\u0000${e.key}`, e]));
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      // Bulk baseline: parse the same body, store every entry in the Map, answer compact results.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { entries: list } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { entries: Registration[] };
        const parts: string[] = [];
        for (const e of list) {
          map.set(`${e.namespace}\u0000${e.key}`, e);
          parts.push('{"ok":true}');
        }
        const body = `{"results":[${parts.join(',')}]}`;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const m = /^\/v1\/registrations\/([^/]+)\/([^/?]+)$/.exec(req.url ?? '');
    const ns = m?.[1];
    const key = m?.[2];
    const e =
      ns !== undefined && key !== undefined
        ? map.get(`${decodeURIComponent(ns)}\u0000${decodeURIComponent(key)}`)
        : undefined;
    if (!e) {
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': 20 });
      res.end('{"code":"NOT_FOUND"}');
      return;
    }
    const body = JSON.stringify(e);
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${(server.address() as { port: number }).port}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
