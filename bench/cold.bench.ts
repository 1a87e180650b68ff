/**
 * Cold starts (issue 15 §1): each command's wall time as a fresh process, against `node -e 0`,
 * NODE_EXTRA_CA_CERTS unset, on the SQLite default holding a few entries. Each sample is a pair —
 * `node -e 0`, then the command — and the row's ratio is the median of the pairs' ratios (a load
 * spike hits both halves of a pair). In the same rounds every command is also timed on the light
 * path without its V8 code cache (REGISTRY_CODE_CACHE=0) and through the full oclif path
 * (REGISTRY_NO_FASTPATH=1), for the note. Targets: register, unregister, lookup, count at most
 * 2.0×; every other command at most 3.0×. One untimed run of each row first writes its code cache
 * (in the bench's own XDG_CACHE_HOME), as any first run does.
 *
 *   npm run build && BENCH=cold node dist/bench/index.js
 *
 * BENCH_COLD_ROUNDS=N sets the pairs per command (default 15, quick 5); BENCH_COLD=register,list
 * runs a subset of the rows.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchModule, median } from './harness.js';

const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

/** A row: its name, its command line, its target. `pre` runs (untimed) before each sample. */
interface Cold {
  name: string;
  args: string[];
  target: '<= 2.0' | '<= 3.0';
  pre?: string[];
}

function rows(pid: string, dir: string): Cold[] {
  return [
    {
      name: 'register',
      args: ['register', 'cold-new', '--pid', pid, '--meta', 'role=bench'],
      target: '<= 2.0',
      pre: ['unregister', 'cold-new'],
    },
    {
      name: 'unregister',
      args: ['unregister', 'cold-new'],
      target: '<= 2.0',
      pre: ['register', 'cold-new', '--pid', pid],
    },
    { name: 'lookup', args: ['lookup', 'cold-1'], target: '<= 2.0' },
    { name: 'count', args: ['count'], target: '<= 2.0' },
    { name: 'list', args: ['list'], target: '<= 3.0' },
    { name: 'meta get', args: ['meta', 'get', 'cold-1', 'role'], target: '<= 3.0' },
    { name: 'health', args: ['health'], target: '<= 3.0' },
    { name: 'dump', args: ['dump'], target: '<= 3.0' },
    {
      name: 'verify',
      // The default store against itself: both read in full, equivalent (exit 0).
      args: [
        'verify',
        `sqlite:${join(dir, 'xdg', 'registry', 'registry.db')}`,
        `sqlite:${join(dir, 'xdg', 'registry', 'registry.db')}`,
      ],
      target: '<= 3.0',
    },
    { name: 'stats', args: ['stats'], target: '<= 3.0' },
    { name: 'backends', args: ['backends'], target: '<= 3.0' },
    { name: 'config view', args: ['config', 'view'], target: '<= 3.0' },
    { name: 'report', args: ['report'], target: '<= 3.0' },
    { name: 'migrate status', args: ['migrate', 'status'], target: '<= 3.0' },
    { name: 'watch', args: ['watch', '--since', '1', '--count', '1'], target: '<= 3.0' },
  ];
}

const mod: BenchModule = {
  name: 'cold',
  async run(ctx) {
    const dir = join(ctx.dir, 'cold');
    mkdirSync(dir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XDG_DATA_HOME: join(dir, 'xdg'),
      XDG_CONFIG_HOME: join(dir, 'xdg-config'),
      XDG_STATE_HOME: join(dir, 'xdg-state'),
      XDG_CACHE_HOME: join(dir, 'xdg-cache'),
      NO_COLOR: '1',
    };
    for (const k of [
      'NODE_EXTRA_CA_CERTS',
      'REGISTRY_BACKEND',
      'REGISTRY_PROFILE',
      'REGISTRY_CONFIG',
      'REGISTRY_NO_FASTPATH',
      'REGISTRY_CODE_CACHE',
    ])
      delete env[k];
    const full = { ...env, REGISTRY_NO_FASTPATH: '1' };
    const noCache = { ...env, REGISTRY_CODE_CACHE: '0' };
    const pid = String(process.pid); // alive for the whole run
    const run = (args: string[], e: NodeJS.ProcessEnv, ok = true) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { env: e, encoding: 'utf8', cwd: dir });
      const ms = performance.now() - t0;
      if (ok && r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
      return ms;
    };
    for (let i = 1; i <= 5; i++)
      run([BIN, 'register', `cold-${i}`, '--pid', pid, '--meta', 'role=bench', '--meta', `n=${i}`], env);
    const only = process.env.BENCH_COLD?.split(',');
    const rounds = Number(process.env.BENCH_COLD_ROUNDS) || (ctx.quick ? 5 : 15);
    for (const row of rows(pid, dir)) {
      if (only && !only.includes(row.name)) continue;
      const base: number[] = [];
      const times = { lite: [] as number[], noCache: [] as number[], full: [] as number[] };
      const ratios = { lite: [] as number[], noCache: [] as number[], full: [] as number[] };
      if (row.pre) run([BIN, ...row.pre], env, false);
      run([BIN, ...row.args], env); // writes the code cache, as a first run does
      for (let i = 0; i < rounds; i++) {
        for (const [e, k] of [
          [env, 'lite'],
          [noCache, 'noCache'],
          [full, 'full'],
        ] as const) {
          if (row.pre) run([BIN, ...row.pre], env, false);
          const b = run(['-e', '0'], env);
          const c = run([BIN, ...row.args], e);
          base.push(b);
          times[k].push(c);
          ratios[k].push(c / b);
        }
      }
      const also = (k: 'noCache' | 'full') => `${median(times[k]).toFixed(1)} ms = ${median(ratios[k]).toFixed(2)}×`;
      ctx.add({
        name: `cold \`registry ${row.args.join(' ').split(dir).join('…')}\` (sqlite default, 5 entries; NODE_EXTRA_CA_CERTS unset)`,
        value: `${median(times.lite).toFixed(1)} ms`,
        baseline: `${median(base).toFixed(1)} ms node -e 0`,
        ratio: median(ratios.lite),
        target: row.target,
        note: `time ratio (median of ${rounds} node/command pairs), lower is better. Light path without its code cache (REGISTRY_CODE_CACHE=0): ${also('noCache')}. Full oclif path (REGISTRY_NO_FASTPATH=1): ${also('full')}`,
      });
    }
  },
};
export default mod;
