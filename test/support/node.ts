/** A real registry node on port 0 for tests, in-process or as a child `registry serve` process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { RegistryNode, type NodeOptions, openNodeRegistry } from '../../src/node/server.js';
import { BIN } from './cli.js';

/** Start a node over `backend` on 127.0.0.1:0 (silent logs). */
export async function startNode(
  backend: string,
  opts: Partial<NodeOptions> & { backendOpts?: Record<string, unknown>; cleanupInterval?: number } = {},
): Promise<RegistryNode> {
  const registry = await openNodeRegistry({
    backend,
    backendOpts: opts.backendOpts,
    cleanupInterval: opts.cleanupInterval ?? 0,
  });
  try {
    return await RegistryNode.start({ registry, port: 0, logLevel: 'silent', ...opts });
  } catch (e) {
    await registry.close();
    throw e;
  }
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stderr(): string;
  /** Exit code/signal once it exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

/** Spawn `registry serve --listen 127.0.0.1:0 …` (or `listen`) and wait for the URL it prints. */
export async function spawnServe(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  listen = '127.0.0.1:0',
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', listen, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`registry serve printed no URL within 20 s; stderr: ${err}`)),
      20_000,
    );
    child.stdout.on('data', (c) => {
      out += c;
      const found = /(https?:\/\/\S+)/.exec(out)?.[1];
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    exited.then(
      ([code, sig]) => {
        clearTimeout(timer);
        reject(new Error(`registry serve exited (${code ?? sig}) before listening: ${err}`));
      },
      (e: unknown) => {
        // `once` rejects on the child's 'error' (it could not be spawned): say so now, not after 20 s.
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
  return { child, url, stderr: () => err, exited };
}
