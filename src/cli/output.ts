/**
 * Human output: cli-table3 tables and chalk colour, off under NO_COLOR or when stdout is not a
 * TTY. Data goes to stdout; progress and diagnostics to stderr. chalk and cli-table3 load on first use.
 */
import { createRequire } from 'node:module';
import type CliTable3 from 'cli-table3';
import type { Registration } from '../backends/contract.js';
import { fieldOrThrow } from './lookup.js';

// cli-table3 loads on first table: `registry lookup` prints without it and starts faster.
const require = createRequire(import.meta.url);
const tableClass = () => require('cli-table3') as typeof CliTable3;

export interface Colors {
  ok(s: string): string;
  warn(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const plain: Colors = { ok: (s) => s, warn: (s) => s, bad: (s) => s, dim: (s) => s, bold: (s) => s };

/** Colour is on only for a TTY without NO_COLOR (FORCE_COLOR forces it). */
export function colorEnabled(
  stream: NodeJS.WriteStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return !!stream.isTTY && env.TERM !== 'dumb';
}

let chalkColors: Colors | undefined;
export async function colors(stream: NodeJS.WriteStream = process.stdout): Promise<Colors> {
  if (!colorEnabled(stream)) return plain;
  if (!chalkColors) {
    const { Chalk } = await import('chalk');
    const c = new Chalk({ level: 1 });
    chalkColors = { ok: c.green, warn: c.yellow, bad: c.red, dim: c.dim, bold: c.bold };
  }
  return chalkColors;
}

/** A table as a string (cli-table3), borders kept light for pasting into issues. */
export function table(head: string[], rows: Array<Array<string | number>>, opts: { color?: boolean } = {}): string {
  const Table = tableClass();
  const t = new Table({ head, style: { head: opts.color ? ['cyan'] : [], border: opts.color ? ['grey'] : [] } });
  for (const r of rows) t.push(r.map((c) => String(c)));
  return t.toString();
}

/** A two-column field/value table. */
export function fieldTable(fields: Array<[string, string | number]>, opts: { color?: boolean } = {}): string {
  const Table = tableClass();
  const t = new Table({ style: { head: [], border: opts.color ? ['grey'] : [] } });
  for (const [k, v] of fields) t.push({ [k]: String(v) });
  return t.toString();
}

/** 3s, 4m, 2h, 5d. */
export function age(sinceMs: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - sinceMs) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** Compact metadata for a table cell. */
export function metaCell(meta: object, max = 60): string {
  const s = JSON.stringify(meta);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function entryTable(items: Registration[], opts: { namespaces?: boolean; color?: boolean } = {}): string {
  const head = [...(opts.namespaces ? ['NAMESPACE'] : []), 'KEY', 'PID', 'NODE', 'META', 'AGE'];
  const now = Date.now();
  return table(
    head,
    items.map((e) => [
      ...(opts.namespaces ? [e.namespace] : []),
      e.key,
      e.pid,
      e.node,
      metaCell(e.meta),
      age(e.registeredAt, now),
    ]),
    opts,
  );
}

export function entryFields(e: Registration): Array<[string, string | number]> {
  return [
    ['namespace', e.namespace],
    ['key', e.key],
    ['pid', e.pid],
    ['node', e.node],
    ['meta', JSON.stringify(e.meta)],
    ['registered', `${new Date(e.registeredAt).toISOString()} (${age(e.registeredAt)} ago)`],
    ['updated', new Date(e.updatedAt).toISOString()],
    ['pid start', e.pidStart ?? '-'],
  ];
}

/** Render a lookup result the way `registry lookup` prints it (shared with the fast path). */
export function renderLookup(e: Registration, opts: { json?: boolean; field?: string; color?: boolean }): string {
  if (opts.field) {
    const v = fieldOrThrow(e, opts.field);
    return typeof v === 'string' ? v : JSON.stringify(v);
  }
  if (opts.json) return JSON.stringify(e, null, 2);
  return describe(entryFields(e));
}

/** `field:  value` lines, aligned (kubectl describe style) for one record. */
export function describe(fields: Array<[string, string | number]>): string {
  const w = Math.max(...fields.map(([k]) => k.length)) + 2;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}`).join('\n');
}
