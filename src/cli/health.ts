/**
 * Health checks for the CLI (`registry health`, `registry report`): which backends to check
 * (the selected one, `--backends URL,…` or `--profiles a,b,…`), one check per backend with a
 * timeout, the exit-code rule, and the tables. Every result is data first (the `--json` shape),
 * rendered second.
 *
 * Exit codes (design §4): 0 healthy · 5 degraded or unhealthy (`--fail-on unhealthy`: degraded
 * is 0) · 6 unreachable (an endpoint that is down is never 0) · other errors keep their code
 * (2 bad URL or profile, 7 unauthorized, 1 internal). Several backends: the worst of them.
 */
import {
  asRegistryError,
  type HealthReport,
  type HealthStatus,
  RegistryError,
  TimeoutError,
} from '../backends/contract.js';
import { parseBackendUrl } from '../backends/open.js';
import { ProcessRegistry } from '../registry/service.js';
import { parseDuration } from '../registry/validate.js';
import { findConfig, loadConfig, resolveBackend, type Resolved, type Selection } from './config.js';
import { age, type Colors, fieldTable, renderTable, type View } from './output.js';
import { roundMs } from '../core/time.js';

/** A backend's health as the CLI reports it: the backend's own status, or why it could not say. */
export type TargetStatus = HealthStatus | 'unreachable' | 'error';

/** `--fail-on`: the least bad status that fails the command. */
export type FailOn = 'degraded' | 'unhealthy';

export interface Target {
  /** What the user named: the profile, or the URL. */
  name: string;
  resolved: Resolved;
}

export interface BackendHealth {
  target: string;
  /** The backend URL (secrets removed by the backend when it opened). */
  backend: string;
  /** Where the choice came from (flag, profile, env, default). */
  source: string;
  status: TargetStatus;
  exitCode: number;
  /** Why it is not healthy, spelled out (the backend's reasons, or the error). */
  reasons: string[];
  /** Time to open the backend and run its check. */
  durationMs: number;
  /** The backend's full report (absent when it could not be reached). */
  health?: HealthReport;
  error?: { code: string; message: string };
}

export interface HealthSummary {
  /** The worst status of all backends. */
  status: TargetStatus;
  exitCode: number;
  failOn: FailOn;
  checkedAt: string;
  backends: BackendHealth[];
}

export interface TargetFlags extends Selection {
  backends?: string;
  profiles?: string;
}

/** Split `a,b , c` into names; empty items are a usage error. */
function splitList(value: string, flag: string): string[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === ''))
    throw new RegistryError(
      'INVALID_INPUT',
      `${flag} ${JSON.stringify(value)} has an empty item: separate names with single commas`,
    );
  return [...new Set(items)];
}

/**
 * The backends to check: `--backends` URLs, `--profiles` names, or (`allProfiles`, for report) every
 * profile of the config file; otherwise the one backend the base flags select.
 */
export function resolveTargets(f: TargetFlags, opts: { allProfiles?: boolean } = {}): Target[] {
  const targets = selectTargets(f, opts);
  // A malformed URL is a usage error (exit 2) before anything is checked.
  for (const t of targets) parseBackendUrl(t.resolved.backend);
  return targets;
}

function selectTargets(f: TargetFlags, opts: { allProfiles?: boolean }): Target[] {
  const out: Target[] = [];
  if (f.backends)
    for (const url of splitList(f.backends, '--backends'))
      out.push({ name: url, resolved: resolveBackend({ backend: url }) });
  if (f.profiles)
    for (const p of splitList(f.profiles, '--profiles'))
      out.push({ name: p, resolved: resolveBackend({ profile: p, config: f.config }) });
  if (out.length > 0) return out;
  if (opts.allProfiles && !f.backend && !f.profile) {
    const path = findConfig(f.config);
    const names = path ? Object.keys(loadConfig(path).profiles ?? {}) : [];
    if (names.length > 0)
      return names.map((p) => ({ name: p, resolved: resolveBackend({ profile: p, config: path }) }));
  }
  const r = resolveBackend({ backend: f.backend, profile: f.profile, config: f.config });
  return [{ name: r.profile ?? r.backend, resolved: r }];
}

/** The exit code one status earns. */
export function exitCodeFor(status: TargetStatus, failOn: FailOn, error?: RegistryError): number {
  if (status === 'healthy') return 0;
  if (status === 'degraded') return failOn === 'unhealthy' ? 0 : 5;
  if (status === 'unhealthy') return 5;
  if (status === 'unreachable') return 6;
  return error?.exitCode ?? 1;
}

// Worst first: an internal error, a bad target, a refused token, a down endpoint, then not healthy.
const exitRank = [1, 2, 7, 6, 5, 0];
const rank = (code: number) => {
  const i = exitRank.indexOf(code);
  return i === -1 ? -1 : exitRank.length - i;
};
const statusRank: Record<TargetStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2, unreachable: 3, error: 4 };

/** Fold several results into one status and one exit code (the worst). */
export function summarize(backends: BackendHealth[], failOn: FailOn): HealthSummary {
  let status: TargetStatus = 'healthy';
  let exitCode = 0;
  for (const b of backends) {
    if (statusRank[b.status] > statusRank[status]) status = b.status;
    if (rank(b.exitCode) > rank(exitCode)) exitCode = b.exitCode;
  }
  return { status, exitCode, failOn, checkedAt: new Date().toISOString(), backends };
}

/** `--timeout`: a duration above zero. */
export function positiveDuration(text: string, flag = '--timeout'): number {
  const ms = parseDuration(text, flag);
  if (ms <= 0)
    throw new RegistryError(
      'INVALID_INPUT',
      `invalid ${flag} ${JSON.stringify(text)}: it must be above zero, e.g. 10s`,
    );
  return ms;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TimeoutError(`${what} did not answer within ${ms} ms: is it up? (raise --timeout if it is just slow)`),
        ),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface CheckOptions {
  failOn: FailOn;
  timeoutMs: number;
  /** The REPL's open registry, checked instead of opening the target (not closed). */
  borrowed?: ProcessRegistry;
  /** `--node-name`: whose pids are judged locally (default: the profile's, env, hostname). */
  nodeName?: string;
}

/**
 * Open one backend (read-only for SQLite files: a health check creates nothing) and ask it. A
 * backend that cannot be opened, or does not answer within `timeoutMs`, is `unreachable`.
 */
export async function checkTarget(t: Target, opts: CheckOptions): Promise<BackendHealth> {
  const t0 = performance.now();
  const r = t.resolved;
  let url = r.backend;
  let opened: Promise<ProcessRegistry> | undefined;
  try {
    let reg = opts.borrowed;
    if (!reg) {
      const { info } = parseBackendUrl(r.backend);
      const backendOpts = info.readonlyOpts ? { ...r.backendOpts, ...info.readonlyOpts } : r.backendOpts;
      opened = ProcessRegistry.open({
        backend: r.backend,
        backendOpts,
        nodeName: opts.nodeName ?? r.node,
        cleanupInterval: 0,
        stats: false,
        create: false,
      });
      reg = await withTimeout(opened, opts.timeoutMs, r.backend);
    }
    url = reg.backend.url;
    const health = await withTimeout(reg.healthCheck(), opts.timeoutMs, url);
    const status: TargetStatus = health.unreachable === true ? 'unreachable' : health.status;
    return {
      target: t.name,
      backend: url,
      source: r.source,
      status,
      exitCode: exitCodeFor(status, opts.failOn),
      reasons: health.reasons ?? [],
      durationMs: roundMs(performance.now() - t0),
      health,
    };
  } catch (err) {
    const e = asRegistryError(err);
    // A store that answered "I am damaged" was reached: it is unhealthy (exit 5), not unreachable.
    const damaged = (e.details as { damaged?: unknown } | undefined)?.damaged === true;
    const status: TargetStatus = damaged
      ? 'unhealthy'
      : e.code === 'UNREACHABLE' || e.code === 'TIMEOUT'
        ? 'unreachable'
        : 'error';
    return {
      target: t.name,
      backend: url,
      source: r.source,
      status,
      exitCode: exitCodeFor(status, opts.failOn, e),
      reasons: [e.message],
      durationMs: roundMs(performance.now() - t0),
      error: { code: e.code, message: e.message },
    };
  } finally {
    // Close what we opened, even when it answers after the timeout.
    if (opened) void opened.then((reg) => reg.close()).catch(() => undefined);
  }
}

/** Check every target (one after the other: each may be a slow network endpoint with its own timeout). */
export async function checkAll(targets: Target[], opts: CheckOptions): Promise<HealthSummary> {
  const rows: BackendHealth[] = [];
  for (const t of targets) rows.push(await checkTarget(t, opts));
  return summarize(rows, opts.failOn);
}

// --- rendering -----------------------------------------------------------------------------------

const STANDARD = new Set([
  'status',
  'reasons',
  'registrations',
  'alive',
  'dead',
  'memoryBytes',
  'lastCleanup',
  'unreachable',
]);

export function paintStatus(c: Colors, status: string): string {
  if (status === 'healthy') return c.ok(status);
  if (status === 'degraded') return c.warn(status);
  return c.bad(status);
}

/** 1536 → "1.5 KiB". */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function fmtInt(n: number): string {
  if (!Number.isInteger(n)) return String(n);
  // As toLocaleString('en-US') groups it, without loading ICU (~20 ms of a cold `health`: docs/cold-start.md).
  return Math.abs(n) < 1e21 ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : n.toLocaleString('en-US');
}

/** An epoch-ms timestamp as "ISO (3m ago)", or "never". */
export function fmtWhen(ms: number | null | undefined, never = 'never'): string {
  if (ms === null || ms === undefined) return never;
  return `${new Date(ms).toISOString()} (${age(ms)} ago)`;
}

/** `walBytes` → "wal size", `inFlight` → "in flight". */
export function label(key: string): string {
  // The unit goes with the value (fmtField): `checkMs` → "check time: 3 ms", `walBytes` → "wal size: 0 B".
  const k = key
    .replace(/(?<=[a-z0-9])Ms$/, /(time|uptime|duration|latency)Ms$/i.test(key) ? '' : 'Time')
    .replace(/(?<=[a-z0-9])Bytes$/, 'Size');
  return k.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

/** A backend-specific field for a table cell, by the conventions of its name. */
export function fmtField(key: string, v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') {
    if (/Bytes$/.test(key)) return fmtBytes(v);
    if (/^last|At$/.test(key) && v > 1e12) return fmtWhen(v);
    if (/Ms$/.test(key)) return fmtMs(v);
    // A pid is a name, not a quantity: no thousands separators.
    if (/(^|[a-z])(pid|Pid)$/.test(key)) return String(v);
    return fmtInt(v);
  }
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  return typeof v === 'object' && Object.keys(v).length === 0 ? '-' : pairs(v);
}

/** A duration for people: 2.627536999999961 → "2.6 ms", 163.2 → "163 ms", 8163 → "8.2 s", 754000 → "12m 34s". */
export function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) < 100) return `${Math.round(v * 10) / 10} ms`;
  if (Math.abs(v) < 1000) return `${Math.round(v)} ms`;
  if (Math.abs(v) < 120_000) return `${(v / 1000).toFixed(1)} s`;
  const s = Math.round(v / 1000);
  if (s < 7200) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** An object as `k=v k=v` (nested values as JSON), for a list item on one line. */
function pairs(v: unknown): string {
  if (!v || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return v.map((x) => (x && typeof x === 'object' ? pairs(x) : String(x))).join(', ');
  return Object.entries(v)
    .map(([k, x]) => `${k}=${typeof x === 'string' ? x : JSON.stringify(x)}`)
    .join(' ');
}

/** One item of a list as a sub-row: named by its `name` or `endpoint` (else its position), the rest `k=v`. */
function itemRow(x: unknown, i: number, indent: string): [string, string] {
  if (!x || typeof x !== 'object' || Array.isArray(x)) return [`${indent}${i + 1}`, pairs(x)];
  const { name, endpoint, ...rest } = x as Record<string, unknown>;
  const id = typeof name === 'string' ? name : typeof endpoint === 'string' ? endpoint : undefined;
  return id === undefined ? [`${indent}${i + 1}`, pairs(x)] : [`${indent}${id}`, pairs(rest)];
}

/**
 * A backend field as rows, never a JSON blob in a cell: an object becomes one indented sub-row
 * per field, a list of objects one sub-row per item as `k=v` pairs (etcd members, a node's info).
 */
export function fieldRows(key: string, v: unknown, indent = ''): Array<[string, string]> {
  const name = `${indent}${label(key)}`;
  if (Array.isArray(v) && v.some((x) => x && typeof x === 'object'))
    return [[name, String(v.length)], ...v.map((x, i) => itemRow(x, i, `${indent}  `))];
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0)
    return [[name, ''], ...Object.entries(v).flatMap(([k, x]) => fieldRows(k, x, `${indent}  `))];
  return [[name, fmtField(key, v)]];
}

function deadCell(h: HealthReport): string {
  const share = h.registrations > 0 ? (h.dead / h.registrations) * 100 : 0;
  return `${fmtInt(h.dead)} (${share.toFixed(1)}%)`;
}

/** The rows every backend has, then its own fields. */
function fields(b: BackendHealth, c: Colors): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['status', paintStatus(c, b.status)],
    ...b.reasons.map((r, i): [string, string] => [i === 0 ? 'why' : '', r]),
  ];
  const h = b.health;
  // An unreachable store's counts are unknown, not zero: show only what the backend could say.
  if (h && b.status !== 'unreachable') {
    rows.push(
      ['registrations', fmtInt(h.registrations)],
      ['alive', fmtInt(h.alive)],
      ['dead', deadCell(h)],
      ['memory', fmtBytes(h.memoryBytes)],
      ['last cleanup', fmtWhen(h.lastCleanup)],
    );
  }
  if (h) for (const [k, v] of Object.entries(h)) if (!STANDARD.has(k)) rows.push(...fieldRows(k, v));
  rows.push(['checked in', fmtMs(b.durationMs)]);
  return rows;
}

/** `registry health`: one field table per backend, headed by its URL. */
export function renderHealth(s: HealthSummary, c: Colors, view?: View): string {
  const parts: string[] = [];
  for (const b of s.backends) {
    const title = b.target === b.backend ? b.backend : `${b.target}: ${b.backend}`;
    parts.push(`${c.bold(title)} ${c.dim(`(${b.source})`)}`, fieldTable(fields(b, c), view));
  }
  if (s.backends.length > 1) parts.push(`overall: ${paintStatus(c, s.status)} (exit ${s.exitCode})`);
  return parts.join('\n');
}

/** `registry report`: the backends side by side, one column each, then every reason spelled out. */
export function renderReport(s: HealthSummary, c: Colors, view?: View): string {
  // Backend-specific fields, flattened to rows (sub-rows for objects), in first-seen order.
  const extra: string[] = [];
  const own = s.backends.map((b) => {
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries(b.health ?? {}))
      if (!STANDARD.has(k))
        for (const [name, val] of fieldRows(k, v)) {
          m.set(name, val);
          if (!extra.includes(name)) extra.push(name);
        }
    return m;
  });
  const cell = (b: BackendHealth, f: (h: HealthReport) => string) =>
    b.health && b.status !== 'unreachable' ? f(b.health) : '-';
  const rows: Array<Array<string>> = [
    // The URL row only where a column is headed by a profile name (else it repeats the header).
    ...(s.backends.some((b) => b.target !== b.backend) ? [['backend', ...s.backends.map((b) => b.backend)]] : []),
    ['status', ...s.backends.map((b) => paintStatus(c, b.status))],
    ['exit', ...s.backends.map((b) => String(b.exitCode))],
    ['registrations', ...s.backends.map((b) => cell(b, (h) => fmtInt(h.registrations)))],
    ['alive', ...s.backends.map((b) => cell(b, (h) => fmtInt(h.alive)))],
    ['dead', ...s.backends.map((b) => cell(b, deadCell))],
    ['memory', ...s.backends.map((b) => cell(b, (h) => fmtBytes(h.memoryBytes)))],
    ['last cleanup', ...s.backends.map((b) => cell(b, (h) => fmtWhen(h.lastCleanup)))],
    ...extra.map((k) => [k, ...own.map((m) => m.get(k) ?? '-')]),
    ['checked in', ...s.backends.map((b) => fmtMs(b.durationMs))],
  ];
  const columns = [{ header: 'FIELD' }, ...s.backends.map((b) => ({ header: b.target, flex: true }))];
  const out = [renderTable({ columns, rows }, view)];
  const why = s.backends.filter((b) => b.reasons.length > 0);
  for (const b of why) for (const r of b.reasons) out.push(`${paintStatus(c, b.status)} ${b.target}: ${r}`);
  out.push(`overall: ${paintStatus(c, s.status)} (exit ${s.exitCode})`);
  return out.join('\n');
}
