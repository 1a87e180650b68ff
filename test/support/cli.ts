/** Run the real `registry` binary (bin/run.js) in a sandbox of temporary XDG folders. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './tmp.js';

export const BIN = fileURLToPath(new URL('../../../bin/run.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

export interface Sandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Run `registry ARGS…` and wait for it. */
  run(args: string[], opts?: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string }): CliResult;
  /** Run asynchronously (for commands that block: await, run). */
  start(
    args: string[],
    opts?: { env?: NodeJS.ProcessEnv; cwd?: string },
  ): { child: ReturnType<typeof spawn>; done: Promise<CliResult> };
  cleanup(): void;
}

export function sandbox(): Sandbox {
  const t = tempDir('procreg-cli-');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_DATA_HOME: join(t.dir, 'data'),
    XDG_CONFIG_HOME: join(t.dir, 'config'),
    XDG_STATE_HOME: join(t.dir, 'state'),
    HOME: t.dir,
    NO_COLOR: '1',
  };
  delete env.REGISTRY_BACKEND;
  delete env.REGISTRY_PROFILE;
  delete env.REGISTRY_CONFIG;
  delete env.FORCE_COLOR;
  mkdirSync(join(t.dir, 'work'), { recursive: true });
  const wrap = (code: number | null, stdout: string, stderr: string): CliResult => ({
    code,
    stdout,
    stderr,
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`not JSON (exit ${code}): ${stdout}\nstderr: ${stderr}`);
      }
    },
  });
  return {
    dir: t.dir,
    env,
    run(args, opts = {}) {
      const r = spawnSync(process.execPath, [BIN, ...args], {
        env: { ...env, ...opts.env },
        input: opts.input ?? '',
        cwd: opts.cwd ?? join(t.dir, 'work'),
        encoding: 'utf8',
        timeout: 60_000,
      });
      return wrap(r.status, r.stdout, r.stderr);
    },
    start(args, opts = {}) {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: { ...env, ...opts.env },
        cwd: opts.cwd ?? join(t.dir, 'work'),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve(wrap(code, out, err))));
      return { child, done };
    },
    cleanup: t.cleanup,
  };
}
