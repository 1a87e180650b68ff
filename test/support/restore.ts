/** Dumps to restore and store digests to compare, for the restore kill tests (issue 12 item 8). */
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import type { Registration } from '../../src/backends/contract.js';
import { Digest } from '../../src/registry/digest.js';
import { ProcessRegistry } from '../../src/registry/service.js';

export interface DumpState {
  file: string;
  count: number;
  digest: string;
}

/**
 * Write a dump of `n` live entries (this process's pid) over namespaces `default` and `jobs`,
 * keys `svc-<from>…`, metadata tagged with `tag`: two states with different tags and offsets
 * overlap in part and differ in every overlapping value.
 */
export function writeState(file: string, n: number, from: number, tag: string): DumpState {
  const entries: Registration[] = [];
  const at = 1_700_000_000_000;
  for (let i = from; i < from + n; i++) {
    entries.push({
      namespace: i % 5 === 0 ? 'jobs' : 'default',
      key: `svc-${String(i).padStart(6, '0')}`,
      pid: process.pid,
      node: hostname(),
      meta: { gen: tag, i, type: i % 3 === 0 ? 'worker' : 'api' },
      registeredAt: at,
      updatedAt: at,
      pidStart: null,
    });
  }
  entries.sort((a, b) => (a.namespace === b.namespace ? (a.key < b.key ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  const d = new Digest();
  for (const e of entries) d.add(e);
  const header = {
    procreg: 'dump',
    version: 1,
    count: d.count,
    digest: d.hex(),
    namespaces: [...new Set(entries.map((e) => e.namespace))].sort(),
    createdAt: Date.now(),
    source: 'test',
  };
  writeFileSync(file, [header, ...entries].map((x) => JSON.stringify(x)).join('\n') + '\n');
  return { file, count: d.count, digest: d.hex() };
}

/** Every stored entry of `url` (all namespaces): count and digest, as a dump would state them. */
export async function storeState(url: string): Promise<{ count: number; digest: string }> {
  const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0 });
  try {
    const d = new Digest();
    for (const namespace of await reg.namespaces())
      for await (const e of reg.entries({ namespace, pageSize: 2000 })) d.add(e);
    return { count: d.count, digest: d.hex() };
  } finally {
    await reg.close();
  }
}

/** SIGKILL a child and wait until it is gone. */
export async function sigkill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}
