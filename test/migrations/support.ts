/** Shared helpers of the migration tests: fixtures copied to a temp dir, the CLI run as a real process. */
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registration } from '../../src/backends/contract.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = join(ROOT, 'fixtures', 'legacy');
export const BIN = join(ROOT, 'bin', 'run.js');
export const FIXTURE_NODE = 'legacy-local';

export interface Expected {
  node: string;
  name: string;
  view: Array<Pick<Registration, 'namespace' | 'key' | 'pid' | 'node' | 'meta'>>;
  lookups: Record<string, number | null>;
  anomalies: Record<string, number>;
}

/** Copy a committed fixture (never modify the original: lookups delete dead rows). */
export function fixture(name: string, dir: string): { path: string; expected: Expected } {
  const path = join(dir, `${name}.db`);
  copyFileSync(join(FIXTURES, `${name}.sqlite`), path);
  return { path, expected: JSON.parse(readFileSync(join(FIXTURES, `${name}.expected.json`), 'utf8')) as Expected };
}

/** The comparable part of entries, sorted by namespace then key. */
export function view(entries: Registration[]): Expected['view'] {
  return entries
    .map(({ namespace, key, pid, node, meta }) => ({ namespace, key, pid, node, meta }))
    .sort((a, b) => (a.namespace === b.namespace ? (a.key < b.key ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Run `registry ARGS` as a real process (CI=1, node name legacy-local, no colour). */
export function cli(
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; onSpawn?(pid: number): void } = { cwd: process.cwd() },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: {
        ...process.env,
        CI: '1',
        NO_COLOR: '1',
        REGISTRY_NODE: FIXTURE_NODE,
        REGISTRY_BACKEND: '',
        REGISTRY_PROFILE: '',
        REGISTRY_CONFIG: '',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('spawn', () => opts.onSpawn?.(child.pid!));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid! }));
  });
}
