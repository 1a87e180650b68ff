import { readFileSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { InvalidInputError } from '../backends/contract.js';
import { RegistryCommand } from '../cli/base.js';
import { readTokenFile } from '../node/auth.js';
import { LOG_FORMATS } from '../node/log.js';
import { NODE_LIMITS, openNodeRegistry, RegistryNode } from '../node/server.js';
import { DEFAULT_CLEANUP_INTERVAL } from '../registry/service.js';
import { parseDuration } from '../registry/validate.js';

export default class Serve extends RegistryCommand<typeof Serve> {
  static override summary = 'Run a registry node: the registry over HTTP/JSON for other machines and processes.';
  static override description = [
    'Serves the backend chosen by --backend/--profile (default: the SQLite file) on the routes of docs/node.md; clients use it with `--backend http://HOST:PORT`.',
    'Binds 127.0.0.1 by default; a non-loopback address needs --token-file (bearer token, checked in constant time).',
    'Prints the bound URL on stdout (with --listen …:0, the real port). Logs go to stderr: JSON lines, or readable lines on a terminal (--log-format).',
    'Sweeps dead processes of its node name every --cleanup-interval; SIGTERM or SIGINT drain in-flight requests and close the backend.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> serve',
    '<%= config.bin %> serve --listen 127.0.0.1:0 --backend memory:',
    '<%= config.bin %> serve --listen 0.0.0.0:7070 --token-file /etc/registry/token --tls-cert cert.pem --tls-key key.pem',
  ];
  static override flags = {
    listen: Flags.string({
      char: 'l',
      summary: 'HOST:PORT to bind ([::1]:PORT for IPv6; port 0 = any free port).',
      default: '127.0.0.1:7070',
    }),
    'token-file': Flags.string({
      summary: 'File whose first line is the bearer token clients must send (required off loopback).',
    }),
    'tls-cert': Flags.string({ summary: 'PEM certificate: serve https.', dependsOn: ['tls-key'] }),
    'tls-key': Flags.string({ summary: 'PEM private key for --tls-cert.', dependsOn: ['tls-cert'] }),
    'cleanup-interval': Flags.string({
      summary:
        'Sweep dead local processes this often (e.g. 30s; 0 = never). Default: backendOpts.cleanupInterval or 30s.',
    }),
    'max-body': Flags.integer({
      summary: 'Largest request body in bytes (bulk requests: 64× this, at most 256 MiB).',
      default: 1024 * 1024,
      min: 1024,
    }),
    'max-bulk': Flags.integer({
      summary: `Bulk requests taken at once; more are answered 503 with Retry-After (default ${NODE_LIMITS.maxBulk}).`,
      default: NODE_LIMITS.maxBulk,
      min: 1,
    }),
    'max-watchers': Flags.integer({
      summary: `Change-feed streams served at once; more are answered 503 with Retry-After (default ${NODE_LIMITS.maxWatchers}).`,
      default: NODE_LIMITS.maxWatchers,
      min: 1,
    }),
    'watch-buffer': Flags.integer({
      summary: `Bytes a change-feed stream may have waiting for a slow reader before it is cut off (default ${NODE_LIMITS.watchBuffer}).`,
      default: NODE_LIMITS.watchBuffer,
      min: 64 * 1024,
    }),
    'lookup-cache': Flags.boolean({
      summary:
        'Serve lookups from the cache the change feed keeps coherent (default: off — a cached answer can lag a write made through another node or process for a feed delay, where lookups are otherwise linearizable).',
      allowNo: true,
    }),
    'request-timeout': Flags.string({
      summary: 'A request must arrive in full within this time (slow clients are cut off).',
      default: '30s',
    }),
    'log-level': Flags.option({
      options: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      summary: 'Log level.',
      default: 'info',
    })(),
    'log-format': Flags.option({
      options: LOG_FORMATS,
      summary: 'Logs on stderr: JSON lines, or readable lines (pino-pretty); auto = readable on a terminal.',
      default: 'auto',
    })(),
  };

  async run(): Promise<void> {
    const f = this.flags;
    const { host, port } = parseListen(f.listen);
    const token = f['token-file'] ? readTokenFile(f['token-file']) : undefined;
    const tls =
      f['tls-cert'] && f['tls-key'] ? { cert: readPem(f['tls-cert']), key: readPem(f['tls-key']) } : undefined;
    const r = this.resolved();
    const fromOpts = r.backendOpts.cleanupInterval;
    const cleanupInterval =
      f['cleanup-interval'] !== undefined
        ? parseDuration(f['cleanup-interval'], '--cleanup-interval')
        : typeof fromOpts === 'number'
          ? fromOpts
          : DEFAULT_CLEANUP_INTERVAL;
    const registry = await openNodeRegistry({
      backend: r.backend,
      backendOpts: r.backendOpts,
      namespace: this.ns ?? r.namespace,
      nodeName: f['node-name'] ?? r.node,
      cleanupInterval,
      ...(f['lookup-cache'] === undefined ? {} : { cache: f['lookup-cache'] }),
    });
    let node: RegistryNode;
    try {
      node = await RegistryNode.start({
        registry,
        host,
        port,
        token,
        tls,
        bodyLimit: f['max-body'],
        bulkBodyLimit: Math.min(f['max-body'] * 64, 256 * 1024 * 1024),
        requestTimeout: parseDuration(f['request-timeout'], '--request-timeout'),
        maxBulk: f['max-bulk'],
        maxWatchers: f['max-watchers'],
        watchBuffer: f['watch-buffer'],
        logLevel: f['log-level'],
        logFormat: f['log-format'],
      });
    } catch (err) {
      await registry.close().catch(() => undefined);
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE')
        throw new InvalidInputError(`${f.listen} is already in use: pick another --listen port (0 = any free port)`);
      if (e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES')
        throw new InvalidInputError(`cannot listen on ${f.listen} (${e.code})`);
      // An address that does not resolve (127.999.1.1 is a host name to getaddrinfo, not an IP).
      if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' || e.code === 'EAI_FAIL' || e.syscall === 'listen')
        throw new InvalidInputError(
          `cannot listen on ${f.listen}: ${host} is not an address of this machine (${e.code}): use an IP address such as 127.0.0.1`,
        );
      throw err;
    }
    // oclif's log() is silent under --json: the URL line is written directly, first thing on stdout.
    if (this.jsonEnabled())
      process.stdout.write(
        `${JSON.stringify({ url: node.url, backend: registry.backend.url, node: registry.nodeName, pid: process.pid })}\n`,
      );
    else
      this.log(`registry node listening on ${node.url} (backend ${registry.backend.url}, node ${registry.nodeName})`);
    node.app.log.info(
      { url: node.url, backend: registry.backend.url, cleanupInterval, auth: !!token, tls: !!tls },
      'registry node listening',
    );
    await new Promise<void>((resolve, reject) => {
      const stop = (sig: NodeJS.Signals) => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        node.app.log.info({ signal: sig, inFlight: node.inFlight }, 'draining and closing');
        node.close().then(() => {
          node.app.log.info('closed');
          resolve();
        }, reject);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  }
}

/** "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" → host and port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new InvalidInputError(
      `invalid --listen ${JSON.stringify(text)}: use HOST:PORT, e.g. 127.0.0.1:7070 (port 0 = any free port)`,
    );
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function readPem(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new InvalidInputError(`cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
}
