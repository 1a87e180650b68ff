/**
 * Issue 7's target: a `lookup` typed in the REPL runs ≥ 20× faster than the same cold
 * `registry lookup` process. The REPL side is one `registry repl` process fed a script of N
 * lookups with `timing on` (each command timed inside the process, from the line read to its
 * output written); the cold side is the median of several `registry lookup` spawns, both through
 * bin/run.js's fast path (which skips oclif) and through the full oclif path. Rounds are
 * interleaved. Cold starts are measured with NODE_EXTRA_CA_CERTS unset (most users' machines, the
 * faster cold start) and, when this machine sets it, as set.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type BenchModule } from './harness.js';
import { ProcessRegistry } from '../src/registry/service.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'run.js');

/** A cold process's wall time, ms. */
function coldMs(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

/** One REPL process running `n` lookups; per-command times (ms) as the REPL measured them, and its wall time. */
async function replRun(
  db: string,
  keys: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ perCommand: number[]; wallMs: number }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, 'repl', '-b', db], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = 0;
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.length));
  child.stderr.on('data', (d: Buffer) => (err += d));
  child.stdin.end(`timing on\n${keys.map((k) => `lookup ${k}\n`).join('')}`);
  const [code] = (await once(child, 'exit')) as [number | null];
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0 || (keys.length > 0 && out === 0)) throw new Error(`repl script failed (${code}): ${err}`);
  const perCommand = [...err.matchAll(/Time: ([\d.]+) ms/g)].map((m) => Number(m[1])).slice(1); // [0] is `timing on`
  if (perCommand.length !== keys.length)
    throw new Error(`expected ${keys.length} timings, got ${perCommand.length}: ${err.slice(0, 500)}`);
  return { perCommand, wallMs };
}

const bench: BenchModule = {
  name: 'repl',
  async run(ctx) {
    const db = `sqlite:${join(ctx.dir, 'repl-bench.db')}`;
    const entries = ctx.quick ? 200 : 2000;
    const reg = await ProcessRegistry.open({ backend: db, cleanupInterval: 0, stats: false });
    await reg.bulkRegister(
      Array.from({ length: entries }, (_, i) => ({
        key: `svc-${i}`,
        pid: process.pid,
        meta: { role: i % 2 ? 'web' : 'worker', i },
      })),
    );
    await reg.close();
    const rounds = ctx.quick ? 3 : 7;
    const perRound = ctx.quick ? 50 : 200;
    const colds = ctx.quick ? 3 : 5;

    const unset: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete unset.NODE_EXTRA_CA_CERTS;
    /** Cold-start samples per environment: the fast path and the full oclif path. */
    type EnvRun = { label: string; env: NodeJS.ProcessEnv; fast: number[]; full: number[] };
    const unsetRun: EnvRun = { label: 'NODE_EXTRA_CA_CERTS unset', env: unset, fast: [], full: [] };
    const envs: EnvRun[] = [unsetRun];
    if (process.env.NODE_EXTRA_CA_CERTS)
      envs.push({ label: 'NODE_EXTRA_CA_CERTS set', env: { ...process.env, NO_COLOR: '1' }, fast: [], full: [] });

    const repl: number[] = [];
    const replWall: Array<{ n: number; ms: number }> = [];
    for (let r = 0; r < rounds; r++) {
      for (const { env, fast, full } of envs) {
        for (let i = 0; i < colds; i++) {
          const key = `svc-${(r * 31 + i * 7) % entries}`;
          fast.push(coldMs([BIN, 'lookup', key, '-b', db], env));
          full.push(coldMs([BIN, 'lookup', key, '-b', db], { ...env, REGISTRY_NO_FASTPATH: '1' }));
        }
      }
      const keys = Array.from({ length: perRound }, (_, i) => `svc-${(r * 997 + i * 13) % entries}`);
      const { perCommand, wallMs } = await replRun(db, keys, unset);
      repl.push(...perCommand.slice(5)); // the first few commands load code lazily (commands, table renderer)
      replWall.push({ n: perRound, ms: wallMs });
      const empty = await replRun(db, [], unset);
      replWall.push({ n: 0, ms: empty.wallMs });
    }

    const replMs = median(repl);
    const withN = median(replWall.filter((w) => w.n > 0).map((w) => w.ms));
    const without = median(replWall.filter((w) => w.n === 0).map((w) => w.ms));
    const outside = (withN - without) / perRound;
    const fmt = (ms: number) => (ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
    const fastUnset = median(unsetRun.fast);
    ctx.add({
      name: 'lookup in the REPL seen from outside, (wall(N lookups) - wall(0)) / N, vs cold fast-path `registry lookup` (NODE_EXTRA_CA_CERTS unset)',
      value: `${fmt(outside)}/lookup`,
      baseline: `${fmt(fastUnset)}/process`,
      ratio: fastUnset / outside,
      target: '>= 20',
      note: 'includes reading the script, parsing, output through the pipe and the timing lines',
    });
    for (const { label, fast, full } of envs) {
      const f = median(fast);
      const o = median(full);
      ctx.add({
        name: `lookup in the REPL vs cold \`registry lookup\` (bin/run.js fast path, ${label})`,
        value: `${fmt(replMs)}/lookup`,
        baseline: `${fmt(f)}/process`,
        ratio: f / replMs,
        target: '>= 20',
        note: `REPL median of ${repl.length} commands timed inside one process; outside view (wall(N)-wall(0))/N = ${fmt(outside)}`,
      });
      ctx.add({
        name: `lookup in the REPL vs cold \`registry lookup\` (full oclif path, REGISTRY_NO_FASTPATH=1, ${label})`,
        value: `${fmt(replMs)}/lookup`,
        baseline: `${fmt(o)}/process`,
        ratio: o / replMs,
        target: '>= 20',
        note: `cold median of ${full.length} spawns; REPL start-up (empty script) ${fmt(without)}`,
      });
    }
  },
};

export default bench;
