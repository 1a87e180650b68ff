/**
 * Human output, one module for every command (design §4, docs/output.md): a table is a model
 * (columns, string cells) rendered by the output form the user asked for:
 *
 * - piped (not a TTY): plain aligned columns as kubectl prints them — a header line (dropped by
 *   `--no-headers`), one line per row, no box drawing, no colour, empty cells as `-` so
 *   `awk '{print $2}'` always finds the same column;
 * - on a TTY: the same columns fitted to the terminal width, long (flexible) cells cut with `…`;
 * - `-o wide`: every column (wide-only ones too), nothing cut;
 * - `-o name`: `namespace/key` (or the row's name) one per line;
 * - `-o json` (`--json`) and `-o yaml`: the command's result, the same data (see base.ts).
 *
 * Colour (chalk) only on a TTY without NO_COLOR. Data goes to stdout; progress and diagnostics to
 * stderr. chalk loads on first use.
 */
import type { Registration } from '../backends/contract.js';
import { colorEnabled } from '../core/color.js';
import { fieldOrThrow } from './lookup.js';

/** Colour is on only for a TTY without NO_COLOR (FORCE_COLOR forces it): src/core/color.ts. */
export { colorEnabled };

export interface Colors {
  ok(s: string): string;
  warn(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const plain: Colors = { ok: (s) => s, warn: (s) => s, bad: (s) => s, dim: (s) => s, bold: (s) => s };

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

/** The `-o/--output` forms besides the default table. */
export const OUTPUT_FORMATS = ['json', 'yaml', 'wide', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface Column {
  header: string;
  /** May be cut with `…` to fit a TTY (these shrink first, widest first). */
  flex?: boolean;
  /** Shown only with `-o wide`. */
  wide?: boolean;
  /** Numbers: aligned right. */
  right?: boolean;
}

/** A table: columns and string cells, plus the `-o name` of each row (default: its first cell). */
export interface TableModel {
  columns: Column[];
  rows: string[][];
  names?: string[];
}

/** How tables print here: the width to fit (a TTY without -o wide), wide columns, a header. */
export interface View {
  width?: number;
  wide: boolean;
  headers: boolean;
  name: boolean;
}

/** The view for stdout: fitted to the terminal on a TTY, plain columns when piped. */
export function viewFor(
  opts: { output?: string; noHeaders?: boolean },
  stream: NodeJS.WriteStream = process.stdout,
): View {
  const wide = opts.output === 'wide';
  const tty = !!stream.isTTY && (stream.columns ?? 0) > 0;
  return {
    width: tty && !wide ? stream.columns : undefined,
    wide,
    headers: !opts.noHeaders,
    name: opts.output === 'name',
  };
}

/** A plain view: all columns, no fitting (tests, the REPL's scripts, pipes). */
export const plainView: View = { wide: false, headers: true, name: false };

const SEP = '   ';
const ANSI = /\x1b\[[0-9;]*m/g;

/** Visible width: ANSI colour codes do not count; one column per code point. */
export function visibleWidth(s: string): number {
  return [...s.replace(ANSI, '')].length;
}

/** Cut to `w` columns with `…` (colour dropped from a cut cell). */
export function truncate(s: string, w: number): string {
  if (visibleWidth(s) <= w) return s;
  const cps = [...s.replace(ANSI, '')];
  return w <= 1 ? '…'.slice(0, w) : `${cps.slice(0, w - 1).join('')}…`;
}

/** One line per cell: no newlines or tabs inside, `-` for an empty cell (columns stay countable). */
function cell(s: string): string {
  const t = s.replace(/[\r\n\t]+/g, ' ');
  return t === '' ? '-' : t;
}

function pad(s: string, w: number, right: boolean | undefined): string {
  const fill = ' '.repeat(Math.max(0, w - visibleWidth(s)));
  return right ? fill + s : s + fill;
}

/** Column widths that fit `width`: flexible columns shrink (widest first) down to their header. */
function fit(widths: number[], cols: Column[], width: number | undefined): number[] {
  if (width === undefined) return widths;
  const w = widths.slice();
  let over = w.reduce((a, b) => a + b, 0) + SEP.length * (w.length - 1) - width;
  const min = (i: number) => Math.max(visibleWidth(cols[i]?.header ?? ''), 8);
  while (over > 0) {
    let best = -1;
    for (let i = 0; i < w.length; i++)
      if (cols[i]?.flex && (w[i] ?? 0) > min(i) && (best < 0 || (w[i] ?? 0) > (w[best] ?? 0))) best = i;
    if (best < 0) break;
    w[best] = (w[best] ?? 0) - 1;
    over--;
  }
  return w;
}

/** A table as text for this view (see the module comment). */
export function renderTable(t: TableModel, v: View = plainView): string {
  if (v.name) return (t.names ?? t.rows.map((r) => r[0] ?? '')).join('\n');
  const keep = t.columns.map((c, i) => (v.wide || !c.wide ? i : -1)).filter((i) => i >= 0);
  const cols = keep.map((i) => t.columns[i] as Column);
  const rows = t.rows.map((r) => keep.map((i) => cell(r[i] ?? '')));
  const lines = v.headers ? [cols.map((c) => c.header), ...rows] : rows;
  const natural = cols.map((_, i) => Math.max(0, ...lines.map((l) => visibleWidth(l[i] ?? ''))));
  const widths = fit(natural, cols, v.width);
  return lines
    .map((l) =>
      l
        .map((s, i) => {
          const w = widths[i] ?? 0;
          const c = truncate(s, w);
          return i === l.length - 1 && !cols[i]?.right ? c : pad(c, w, cols[i]?.right);
        })
        .join(SEP),
    )
    .join('\n');
}

/** A table from a header row and rows (every column fixed). */
export function table(head: string[], rows: Array<Array<string | number>>, v: View = plainView): string {
  return renderTable({ columns: head.map((header) => ({ header })), rows: rows.map((r) => r.map(String)) }, v);
}

/**
 * `field:  value` lines, aligned (kubectl describe style); on a TTY a value longer than the
 * line is cut with `…` (not under -o wide). A field named '' continues the one above.
 */
export function fieldTable(fields: Array<[string, string | number]>, v: View = plainView): string {
  if (fields.length === 0) return '';
  const w = Math.max(...fields.map(([k]) => visibleWidth(k))) + 2;
  const room = v.width === undefined ? undefined : Math.max(10, v.width - w);
  return fields
    .map(([k, val]) => {
      // An empty value stays empty: it heads the indented sub-rows below it.
      const s = String(val).replace(/[\r\n\t]+/g, ' ');
      return `${pad(k ? `${k}:` : '', s ? w : 0, false)}${room === undefined ? s : truncate(s, room)}`;
    })
    .join('\n');
}

/**
 * Labelled lists of items (`entries 5`, `copied 5`, …) as `label:  a, b, c` lines under a heading,
 * continued on indented lines to fit a TTY; one line per label when piped or under -o wide.
 */
export function itemLines(groups: Array<[string, string[]]>, v: View = plainView): string {
  const w = Math.max(0, ...groups.map(([k]) => visibleWidth(k))) + 4;
  const out: string[] = [];
  for (const [k, items] of groups) {
    let line = `  ${k}:`.padEnd(w);
    let fresh = true;
    for (const [i, it] of items.entries()) {
      const piece = `${it}${i < items.length - 1 ? ',' : ''}`;
      if (!fresh && v.width !== undefined && visibleWidth(line) + 1 + visibleWidth(piece) > v.width) {
        out.push(line);
        line = ' '.repeat(w);
      }
      line += ` ${piece}`;
      fresh = false;
    }
    out.push(line);
  }
  return out.join('\n');
}

/** 3s, 4m, 2h, 5d; `-` when the time is unknown (0, as legacy rows have, or not a number). */
export function age(sinceMs: number, now = Date.now()): string {
  if (!Number.isFinite(sinceMs) || sinceMs <= 0) return '-';
  const s = Math.max(0, Math.round((now - sinceMs) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** An epoch-ms time as ISO, or `-` when unknown. */
export function isoTime(ms: number | null | undefined): string {
  return ms && Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : '-';
}

/** A value as one word: strings as they are, the rest as JSON. */
function word(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Metadata for a cell: `role=web,port=8080` (no JSON blob); cut with `…` past `max`. */
export function metaCell(meta: object, max = Infinity): string {
  const s = Object.entries(meta)
    .map(([k, v]) => `${k}=${word(v)}`)
    .join(',');
  return max < Infinity ? truncate(s, max) : s;
}

/** `registry list`: NAMESPACE first, so `registry list | awk '{print $2}'` prints keys. */
export function entryTable(items: Registration[], now = Date.now()): TableModel {
  return {
    columns: [
      { header: 'NAMESPACE' },
      { header: 'KEY' },
      { header: 'PID', right: true },
      { header: 'NODE' },
      { header: 'META', flex: true },
      { header: 'AGE', right: true },
      { header: 'REGISTERED', wide: true },
      { header: 'PID START', wide: true, right: true },
    ],
    rows: items.map((e) => [
      e.namespace,
      e.key,
      String(e.pid),
      e.node,
      metaCell(e.meta),
      age(e.registeredAt, now),
      isoTime(e.registeredAt),
      e.pidStart === undefined || e.pidStart === null ? '-' : String(e.pidStart),
    ]),
    names: items.map((e) => `${e.namespace}/${e.key}`),
  };
}

export function entryFields(e: Registration): Array<[string, string | number]> {
  const known = Number.isFinite(e.registeredAt) && e.registeredAt > 0;
  return [
    ['namespace', e.namespace],
    ['key', e.key],
    ['pid', String(e.pid)],
    ['node', e.node],
    ['meta', metaCell(e.meta)],
    ['registered', known ? `${isoTime(e.registeredAt)} (${age(e.registeredAt)} ago)` : '-'],
    ['updated', isoTime(e.updatedAt)],
    ['pid start', e.pidStart ?? '-'],
  ];
}

/**
 * Render a lookup result the way `registry lookup` prints it (shared with the fast path):
 * `--field` plain, `-o json|yaml` the record, `-o name` namespace/key, else field lines.
 */
export function renderLookup(
  e: Registration,
  opts: { json?: boolean; output?: string; field?: string; view?: View },
): string {
  if (opts.field) {
    const v = fieldOrThrow(e, opts.field);
    return typeof v === 'string' ? v : JSON.stringify(v);
  }
  if (opts.json || opts.output === 'json') return JSON.stringify(e, null, 2);
  if (opts.output === 'yaml') return toYaml(e);
  if (opts.output === 'name') return `${e.namespace}/${e.key}`;
  return fieldTable(entryFields(e), opts.view);
}

const YAML_PLAIN = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
const YAML_WORDS = /^(true|false|null|yes|no|on|off|y|n|~)$/i;

function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return YAML_PLAIN.test(v) && !YAML_WORDS.test(v) ? v : JSON.stringify(v);
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  return String(v);
}

function yamlBlock(v: object, pre: string): string[] {
  const isBlock = (x: unknown): x is object => !!x && typeof x === 'object' && Object.keys(x).length > 0;
  const out: string[] = [];
  if (Array.isArray(v)) {
    for (const x of v as unknown[]) {
      if (!isBlock(x)) out.push(`${pre}- ${yamlScalar(x)}`);
      else {
        const [first = '', ...more] = yamlBlock(x, `${pre}  `);
        out.push(`${pre}- ${first.slice(pre.length + 2)}`, ...more);
      }
    }
  } else {
    for (const [k, x] of Object.entries(v)) {
      if (isBlock(x)) out.push(`${pre}${yamlScalar(k)}:`, ...yamlBlock(x, `${pre}  `));
      else out.push(`${pre}${yamlScalar(k)}: ${yamlScalar(x)}`);
    }
  }
  return out;
}

/**
 * `-o yaml`: JSON-shaped data (what `--json` prints) as block YAML. Strings that could read as
 * another type are double-quoted (a JSON string is a valid YAML double-quoted scalar).
 */
export function toYaml(data: unknown): string {
  const v: unknown = JSON.parse(JSON.stringify(data) ?? 'null');
  return v && typeof v === 'object' && Object.keys(v).length > 0 ? yamlBlock(v, '').join('\n') : yamlScalar(v);
}
