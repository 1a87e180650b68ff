/**
 * `registry health`, `report` and `stats` end to end: the real binary, SQLite files holding keys of
 * real spawned processes, killed one by one until the dead share crosses 10 % and 30 %.
 * Exit codes: 0 healthy, 5 degraded/unhealthy (--fail-on unhealthy lets degraded pass), 6 unreachable.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { loadBetterSqlite } from '../../src/backends/sqlite.js';
import type { HealthSummary } from '../../src/cli/health.js';
import type { StatsResult } from '../../src/commands/stats.js';
import { type Sleeper, spawnSleepers, type Tuple, waitFor } from '../support/processes.js';
import { BIN, type Sandbox } from '../support/cli.js';
import { present } from '../support/expect.js';
import { backendAt, healthAt, nodeSandbox } from './sandbox.js';

const NODE = 'health-cli-node';
const sb = nodeSandbox(NODE);

/** `count` processes holding `perProcess` keys each in a new SQLite file. */
async function fleet<N extends number>(
  name: string,
  count: N,
  perProcess: number,
): Promise<{ url: string; path: string; procs: Tuple<Sleeper, N> }> {
  const path = join(sb.dir, `${name}.db`);
  const url = `sqlite:${path}`;
  const reg = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, nodeName: NODE });
  const procs = await spawnSleepers(count);
  const all: readonly Sleeper[] = procs; // the tuple as an array: N is not known here
  await reg.bulkRegister(
    all.flatMap((p, i) =>
      Array.from({ length: perProcess }, (_, j) => ({
        key: `${name}-${i}-${j}`,
        pid: p.pid,
        namespace: j % 2 ? 'odd' : 'even',
      })),
    ),
  );
  await reg.close();
  return { url, path, procs };
}

const summary = (r: ReturnType<Sandbox['run']>) => r.json<HealthSummary>();

describe('registry health on real degraded states', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  it('healthy → degraded (10 %) → unhealthy (30 %), exit codes 0 → 5, --fail-on unhealthy relaxes degraded only', async () => {
    const { url, procs } = await fleet('dying', 20, 5);
    let r = sb.run(['health', '-b', url]);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^status: +healthy$/m);
    expect(r.stdout).to.match(/^registrations: +100$/m);
    expect(r.stdout, 'plain lines when piped: no box drawing').to.not.match(/[│─┌└]/);

    await procs[0].kill(); // 5 % dead: still healthy
    r = sb.run(['health', '-b', url, '--json']);
    expect(r.code).to.equal(0);
    expect(healthAt(summary(r)).dead).to.equal(5);

    await procs[1].kill(); // 10 %: degraded
    r = sb.run(['health', '-b', url]);
    expect(r.code, r.stdout).to.equal(5);
    expect(r.stdout).to.match(/^status: +degraded$/m);
    expect(r.stdout, r.stdout).to.match(/^why: +10\.0% of registrations are dead \(>= 10%\): run `registry cleanup`$/m);
    expect(
      sb.run(['health', '-b', url, '--fail-on', 'unhealthy']).code,
      'degraded passes with --fail-on unhealthy',
    ).to.equal(0);

    for (const p of procs.slice(2, 6)) await p.kill(); // 30 %: unhealthy
    r = sb.run(['health', '-b', url, '--json']);
    expect(r.code).to.equal(5);
    const s = summary(r);
    expect(s.status).to.equal('unhealthy');
    expect(s.exitCode).to.equal(5);
    expect(backendAt(s).status).to.equal('unhealthy');
    const h = healthAt(s);
    expect([h.alive, h.dead, h.registrations]).to.deep.equal([70, 30, 100]);
    expect(backendAt(s).reasons[0]).to.match(/30\.0% of registrations are dead \(>= 30%\)/);
    expect(
      sb.run(['health', '-b', url, '--fail-on', 'unhealthy']).code,
      'unhealthy fails even with --fail-on unhealthy',
    ).to.equal(5);

    // The remedy the reason names works, and health says so.
    expect(sb.run(['cleanup', '-b', url]).code).to.equal(0);
    r = sb.run(['health', '-b', url, '--json']);
    expect(r.code).to.equal(0);
    expect(healthAt(summary(r)).registrations).to.equal(70);
    expect(typeof healthAt(summary(r)).lastCleanup).to.equal('number');
  });

  it('a reader that starves checkpoints lets the WAL grow past walLimitBytes: degraded, until the checkpoint the reason names', async () => {
    const { url, path, procs } = await fleet('starved', 2, 1);
    const cfg = join(sb.dir, 'wal.config.json');
    // SQLite checkpoints every ~1000 pages (4 MiB) and then reuses the WAL from its start: without
    // a reader in the way it stays near 4 MiB however much is written.
    writeFileSync(
      cfg,
      JSON.stringify({ profiles: { wal: { backend: url, backendOpts: { walLimitBytes: 8 * 1048576 } } } }),
    );
    const writer = await ProcessRegistry.open({ backend: url, cleanupInterval: 0, nodeName: NODE });
    const meta = { pad: 'x'.repeat(4000) };
    const write = async (prefix: string) => {
      for (let i = 0; i < 3000; i++) await writer.register(`${prefix}-${i}`, procs[0].pid, meta);
    };
    await write('free');
    const calm = sb.run(['health', '--config', cfg, '--profile', 'wal', '--json']);
    expect(
      calm.code,
      `checkpoints keep the WAL small: ${JSON.stringify(summary(calm).backends[0]?.health?.walBytes)}`,
    ).to.equal(0);

    const Database = loadBetterSqlite();
    const reader = new Database(path, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM registrations').get(); // holds its snapshot: checkpoints cannot pass it
    await write('starved');
    const r = sb.run(['health', '--config', cfg, '--profile', 'wal', '--json']);
    expect(r.code, r.stdout).to.equal(5);
    const b = backendAt(summary(r));
    expect(b.status).to.equal('degraded');
    expect(b.reasons.join('\n')).to.match(
      /the WAL file is [\d.]+ MiB \(> 8\.0 MiB\): a long-running reader blocks checkpoints/,
    );
    reader.exec('COMMIT');
    reader.close();
    const db = new Database(path);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    await writer.close();
    expect(sb.run(['health', '--config', cfg, '--profile', 'wal']).code, 'healthy again after the checkpoint').to.equal(
      0,
    );
  });

  it('unreachable is exit 6, never 0, and nothing is created; a malformed URL is exit 2 in one line', async () => {
    const file = join(sb.dir, 'plain-file');
    writeFileSync(file, 'not a folder');
    const under = join(file, 'registry.db');
    const r = sb.run(['health', '-b', `sqlite:${under}`]);
    expect(r.code, r.stdout + r.stderr).to.equal(6);
    expect(r.stdout).to.match(/^status: +unreachable$/m);
    const j = sb.run(['health', '-b', `sqlite:${under}`, '--json']);
    expect(j.code).to.equal(6);
    const s = summary(j);
    expect(s.status).to.equal('unreachable');
    const target = backendAt(s);
    present(target.error, 'an unreachable backend reports its error');
    expect(target.error.code).to.equal('UNREACHABLE');
    expect(target.health).to.equal(undefined);

    const missing = join(sb.dir, 'nowhere', 'registry.db');
    expect(sb.run(['health', '-b', `sqlite:${missing}`]).code).to.equal(6);
    expect(existsSync(join(sb.dir, 'nowhere')), 'a health check creates no database').to.equal(false);
    // Neither does the default location on a fresh machine.
    expect(sb.run(['health']).code).to.equal(6);

    const bad = sb.run(['health', '-b', 'nosuch:thing']);
    expect(bad.code).to.equal(2);
    expect(bad.stdout).to.equal('');
    expect(bad.stderr.trim().split('\n').length).to.equal(1);
    expect(bad.stderr).to.match(/unknown backend scheme "nosuch:"/);
  });

  it('--watch N re-checks until SIGINT, sees the status change, exits with the last round', async () => {
    const { url, procs } = await fleet('watched', 10, 2);
    const child = spawn(process.execPath, [BIN, 'health', '-b', url, '--watch', '1', '--json'], {
      env: sb.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const rounds = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as HealthSummary);
    try {
      await waitFor(() => rounds().length >= 1, 30_000, 'a first round');
      expect(rounds()[0]?.status).to.equal('healthy');
      await procs[0].kill(); // 2/20 = 10 %
      await waitFor(() => rounds().some((s) => s.status === 'degraded'), 30_000, 'a degraded round');
    } finally {
      child.kill('SIGINT');
    }
    const code = await exited;
    expect(code, `exit code of the last (degraded) round; stderr: ${err}`).to.equal(5);
    expect(rounds().length >= 2).to.be.ok;
    expect(rounds().at(-1)?.status).to.equal('degraded');
  });
});

describe('registry report across profiles', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  it('side by side, worst exit code, --profiles narrows, --output writes the CI artifact', async () => {
    const good = await fleet('good', 4, 3);
    const sick = await fleet('sick', 10, 1);
    await sick.procs[0].kill();
    await sick.procs[1].kill(); // 20 % dead: degraded
    const cwd = join(sb.dir, 'work');
    writeFileSync(
      join(cwd, 'registry.config.json'),
      JSON.stringify({
        default: 'good',
        profiles: {
          good: { backend: good.url },
          sick: { backend: sick.url },
          gone: { backend: `sqlite:${join(sb.dir, 'gone', 'x.db')}` },
        },
      }),
    );
    const table = sb.run(['report', '--profiles', 'good,sick']);
    expect(table.code, table.stdout + table.stderr).to.equal(5);
    const head = table.stdout.split('\n').find((l) => l.includes('good'));
    present(head, `a header row naming the profiles:\n${table.stdout}`);
    expect(head.indexOf('good') < head.indexOf('sick'), 'one column per profile, in the order given').to.be.ok;
    expect(table.stdout).to.match(/degraded sick: 20\.0% of registrations are dead/);
    expect(table.stdout).to.match(/overall: degraded \(exit 5\)/);

    const j = sb.run(['report', '--profiles', 'good,sick', '--json']);
    const s = summary(j);
    expect(s.backends.map((b) => [b.target, b.status, b.exitCode, b.health?.registrations])).to.deep.equal([
      ['good', 'healthy', 0, 12],
      ['sick', 'degraded', 5, 10],
    ]);
    expect(s.status).to.equal('degraded');
    expect(sb.run(['report', '--profiles', 'good']).code).to.equal(0);
    expect(sb.run(['report', '--profiles', 'good,sick', '--fail-on', 'unhealthy']).code).to.equal(0);

    // No flag: every profile of the config file; the unreachable one makes it exit 6.
    const artifact = join(sb.dir, 'health-report.json');
    const all = sb.run(['report', '--output', artifact]);
    expect(all.code, all.stdout).to.equal(6);
    const written = JSON.parse(readFileSync(artifact, 'utf8')) as HealthSummary;
    expect(written.backends.map((b) => [b.target, b.status])).to.deep.equal([
      ['good', 'healthy'],
      ['sick', 'degraded'],
      ['gone', 'unreachable'],
    ]);
    expect(written.exitCode).to.equal(6);

    // --backends takes URLs, and health takes the same selection.
    const urls = sb.run(['health', '--backends', `${good.url},${sick.url}`, '--json']);
    expect(urls.code).to.equal(5);
    expect(summary(urls).backends.map((b) => b.backend)).to.deep.equal([good.url, sick.url]);
    expect(sb.run(['report', '--profiles', 'good,nope']).code, 'an unknown profile is a usage error').to.equal(2);
  });
});

describe('registry stats', function () {
  // Dozens of real CLI processes (or a cluster) per test: a loaded 2-core machine needs minutes.
  this.timeout(180_000);
  it('per-namespace counts, alive/dead, memory; a one-shot process says it has no counters', async () => {
    const { url, procs } = await fleet('counted', 5, 4);
    await procs[0].kill();
    const r = sb.run(['stats', '-b', url, '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const s = r.json<StatsResult>();
    expect(s.namespaces).to.deep.equal({ even: 10, odd: 10 });
    expect([s.registrations, s.alive, s.dead]).to.deep.equal([20, 16, 4]);
    expect(s.countersFrom).to.equal('this process');
    expect(s.operations).to.deep.equal({});
    expect(s.memory.backendBytes > 0 && s.memory.processRssBytes > 0).to.be.ok;
    const t = sb.run(['stats', '-b', url]);
    expect(t.code).to.equal(0);
    expect(t.stdout).to.match(/^NAMESPACE {3}REGISTRATIONS\neven {8}10\nodd {9}10$/m);
    expect(t.stdout).to.match(/16 alive, 4 dead \(20\.0%\)/);
    expect(t.stdout).to.match(/no operation counters: a one-shot CLI process has no history/);
  });

  it("in the REPL (a long-lived process) it shows the session's own counters and latencies", async () => {
    const { url, procs } = await fleet('session', 1, 1);
    const script = [
      `register r-1 --pid ${procs[0].pid}`,
      'lookup r-1',
      'lookup r-1',
      'health',
      'stats --json',
      '',
    ].join('\n');
    const child = spawn(process.execPath, [BIN, 'repl', '-b', url], { env: sb.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stdin.end(script);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code, out).to.equal(0);
    expect(out, "health runs on the session's registry").to.match(/^status: +healthy$/m);
    const last = out.slice(out.lastIndexOf('\n{\n') + 1);
    const s = JSON.parse(last) as StatsResult;
    expect(s.countersFrom).to.equal('this process');
    const { register, lookup } = s.operations;
    present(register, `register counters in ${JSON.stringify(s.operations)}`);
    present(lookup, `lookup counters in ${JSON.stringify(s.operations)}`);
    expect(register.count >= 1, JSON.stringify(s.operations)).to.be.ok;
    expect(lookup.count >= 2, JSON.stringify(s.operations)).to.be.ok;
    expect((lookup.latencyMs.samples ?? 0) >= 2 && lookup.latencyMs.max > 0, 'the first calls are all timed').to.be.ok;
  });
});
