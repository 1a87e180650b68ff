/**
 * A real etcd cluster (3.4, the `etcd` binary on PATH) on 127.0.0.1 for tests and benchmarks.
 *
 * API (everything is by pid; nothing is left running after `stop()`):
 *
 *   const cluster = await startEtcdCluster({ members: 3 });   // or { members: 1 }
 *   cluster.endpoints            // ['127.0.0.1:41234', ...] client endpoints, one per member
 *   cluster.endpoint(0)          // member 0's client endpoint (throws for a member that is not there)
 *   cluster.url('/myprefix')     // 'etcd://127.0.0.1:41234,127.0.0.1:41236,.../myprefix'
 *   await cluster.killMember(1, 'SIGKILL')   // kill member 1 (0-based) and wait for its exit
 *   await cluster.restartMember(1)           // start it again on the same ports and data dir,
 *                                            // resolves once it answers /health
 *   await cluster.waitHealthy()              // poll until every running member answers /health
 *   cluster.running(i)                       // whether member i is up
 *   await cluster.stop()                     // SIGTERM every member (SIGKILL after 10 s), wait
 *                                            // for each exit, remove the temp data dirs
 *
 * Ports are chosen dynamically: bind port 0 on 127.0.0.1, read the port, release it (a tiny race
 * with other programs is possible; startup retries once on a bind failure). Data lives in a fresh
 * temp dir. Member logs go to `<dataRoot>/eN.log` (kept on failure; the path is in the error).
 * `ETCD_UNSUPPORTED_ARCH` is passed through for non-amd64 machines. A process-exit hook SIGKILLs
 * members left running when a test crashes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdClusterOptions {
  /** Members (default 3). */
  members?: number;
  /** How long to wait for the cluster to become healthy (default 30 s). */
  startTimeoutMs?: number;
  /** Extra flags for every member (e.g. ['--auto-compaction-retention=1']). */
  extraArgs?: string[];
}

export interface EtcdCluster {
  /** `host:port` client endpoints, one per member, in member order. */
  readonly endpoints: string[];
  /** Member `i`'s `host:port` client endpoint; throws when there is no member `i`. */
  endpoint(i: number): string;
  /** The root temp dir holding the members' data dirs and logs. */
  readonly dataRoot: string;
  /** An `etcd://` backend URL over every endpoint, with an optional `/prefix`. */
  url(prefix?: string): string;
  /** Whether member `i` is running. */
  running(i: number): boolean;
  /** The pid of member `i` (undefined when stopped). */
  pid(i: number): number | undefined;
  /** Signal member `i` and wait until it has exited. */
  killMember(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Start member `i` again (same ports, same data dir) and wait until it is healthy. */
  restartMember(i: number): Promise<void>;
  /** Poll every running member's /health until all answer healthy. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stop every member by pid, wait for each exit, remove the data. */
  stop(): Promise<void>;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  child?: ChildProcess;
  exited?: Promise<unknown>;
}

const live = new Set<ChildProcess>();
let hooked = false;

/** Start a cluster; resolves once every member reports healthy. */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const n = opts.members ?? 3;
  const dataRoot = mkdtempSync(join(tmpdir(), 'procreg-etcd-'));
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
  const ports = await freePorts(n * 2);
  const port = (j: number): number => {
    const p = ports[j];
    if (p === undefined) throw new Error(`freePorts gave ${ports.length} ports, ${n * 2} were asked for`);
    return p;
  };
  const members: Member[] = Array.from({ length: n }, (_, i) => ({
    name: `e${i + 1}`,
    clientPort: port(2 * i),
    peerPort: port(2 * i + 1),
    dataDir: join(dataRoot, `e${i + 1}`),
    logPath: join(dataRoot, `e${i + 1}.log`),
  }));
  const member = (i: number): Member => {
    const m = members[i];
    if (!m) throw new RangeError(`no etcd member ${i}: the cluster has ${members.length}`);
    return m;
  };
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const token = `procreg-${process.pid}-${Date.now().toString(36)}`;

  const startMember = async (m: Member, state: 'new' | 'existing'): Promise<void> => {
    mkdirSync(m.dataDir, { recursive: true });
    const fd = openSync(m.logPath, 'a');
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (arch() !== 'x64' && !env.ETCD_UNSUPPORTED_ARCH)
      env.ETCD_UNSUPPORTED_ARCH = arch() === 'arm64' ? 'arm64' : arch();
    const child = spawn(
      'etcd',
      [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
        `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
        `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        `--initial-cluster-token=${token}`,
        // Loopback: fast elections, so fault tests see a new leader in well under a second.
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--log-level=warn',
        '--logger=zap',
        ...(opts.extraArgs ?? []),
      ],
      { stdio: ['ignore', fd, fd], env },
    );
    closeSync(fd);
    live.add(child);
    m.child = child;
    m.exited = once(child, 'exit').then(() => live.delete(child));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => reject(new Error(`cannot start etcd (is it on PATH?): ${err.message}`)));
    });
  };

  const memberHealthy = async (m: Member): Promise<boolean> => {
    try {
      const res = await fetch(`http://127.0.0.1:${m.clientPort}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return res.ok && body.health === 'true';
    } catch {
      return false;
    }
  };

  const isRunning = (m: Member) => !!m.child && m.child.exitCode === null && m.child.signalCode === null;

  const waitHealthy = async (timeoutMs = opts.startTimeoutMs ?? 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const up = members.filter(isRunning);
      const dead = members.filter((m) => m.child && !isRunning(m));
      if (dead.length && up.length === 0) break;
      const ok = await Promise.all(up.map(memberHealthy));
      if (up.length > 0 && ok.every(Boolean)) return;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const logs = members.map((m) => `--- ${m.logPath}:\n${tail(m.logPath)}`).join('\n');
    throw new Error(`etcd cluster did not become healthy within ${timeoutMs} ms\n${logs}`);
  };

  const stopMember = async (m: Member, signal: NodeJS.Signals): Promise<void> => {
    if (!m.child) return;
    if (isRunning(m)) m.child.kill(signal);
    const timer = setTimeout(() => {
      if (m.child && isRunning(m)) m.child.kill('SIGKILL');
    }, 10_000);
    await m.exited;
    clearTimeout(timer);
    m.child = undefined;
  };

  await Promise.all(members.map((m) => startMember(m, 'new')));
  try {
    await waitHealthy();
  } catch (e) {
    await Promise.all(members.map((m) => stopMember(m, 'SIGKILL')));
    throw e;
  }

  return {
    endpoints: members.map((m) => `127.0.0.1:${m.clientPort}`),
    endpoint: (i) => `127.0.0.1:${member(i).clientPort}`,
    dataRoot,
    url(prefix = '') {
      const p = prefix && !prefix.startsWith('/') ? `/${prefix}` : prefix;
      return `etcd://${members.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}${p}`;
    },
    running: (i) => isRunning(member(i)),
    pid: (i) => {
      const m = member(i);
      return isRunning(m) ? m.child?.pid : undefined;
    },
    async killMember(i, signal = 'SIGKILL') {
      await stopMember(member(i), signal);
    },
    async restartMember(i) {
      const m = member(i);
      if (isRunning(m)) throw new Error(`member ${m.name} is still running`);
      await startMember(m, 'existing');
      const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
      while (!(await memberHealthy(m))) {
        if (!isRunning(m)) throw new Error(`etcd member ${m.name} exited on restart:\n${tail(m.logPath)}`);
        if (Date.now() > deadline)
          throw new Error(`etcd member ${m.name} not healthy after restart:\n${tail(m.logPath)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    waitHealthy,
    async stop() {
      await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

/** `count` distinct free TCP ports on 127.0.0.1 (bind port 0, read, release). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const s = createServer();
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
