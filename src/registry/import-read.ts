/**
 * `registry import`'s readers (split from import.ts): NDJSON and CSV, streamed, one item per line
 * with its line number, or why the line could not be read.
 */
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { InvalidInputError, RegistryError } from '../backends/contract.js';
import { parseMetaPairs } from './validate.js';

/** A line as read: the raw item, or why it could not be read. */
export interface Item {
  line: number;
  raw?: RawEntry;
  error?: string;
  /** The input cannot be read past this line (broken CSV quoting). */
  fatal?: boolean;
}

export type RawEntry = {
  key: unknown;
  pid: unknown;
  namespace?: unknown;
  node?: unknown;
  meta?: unknown;
  pidStart?: unknown;
  registeredAt?: unknown;
  updatedAt?: unknown;
};

const NDJSON_FIELDS = new Set(['namespace', 'key', 'pid', 'node', 'meta', 'pidStart', 'registeredAt', 'updatedAt']);

// --- reading ----------------------------------------------------------------------------------

export function openInput(
  file: string,
  given?: Readable,
): { stream: Readable; bytes: () => number; totalBytes?: number } {
  let stream: Readable;
  let totalBytes: number | undefined;
  if (given) stream = given;
  else if (file === '-') stream = process.stdin;
  else {
    let st;
    try {
      st = statSync(file);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new InvalidInputError(
        `cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (cause as Error).message}: check the path`,
        { cause },
      );
    }
    if (st.isDirectory()) throw new InvalidInputError(`${file} is a directory: give the file to import`);
    if (st.isFile()) totalBytes = st.size;
    stream = createReadStream(file, { highWaterMark: 1 << 20 });
  }
  // bytesRead of a file stream or a socket (stdin); no 'data' listener: it would start the flow early.
  return { stream, bytes: () => (stream as { bytesRead?: number }).bytesRead ?? 0, totalBytes };
}

/** A read error of the input (not a bad line): the import cannot go on. */
function readError(label: string, cause: unknown): RegistryError {
  return new InvalidInputError(`cannot read ${label}: ${(cause as Error).message}`, { cause });
}

/** The lines of a chunk of input at a time (one await per chunk, not per line). */
export async function* ndjsonItems(stream: Readable, label: string): AsyncGenerator<Item[]> {
  let carry = '';
  let n = 0;
  let first = true;
  const item = (text: string): Item | undefined => {
    n++;
    if (text.length === 0 || text.trim() === '') return undefined;
    const line = n;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (cause) {
      return { line, error: `not valid JSON (${(cause as Error).message})` };
    }
    if (first) {
      first = false;
      if (v && typeof v === 'object' && (v as { procreg?: unknown }).procreg === 'dump')
        throw new InvalidInputError(
          `${label} is a procreg dump (its first line is a dump header): load it with \`registry restore ${label === 'stdin' ? '-' : label}\``,
        );
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      return { line, error: 'expected an entry object like {"key":"web-1","pid":4242}' };
    for (const f in v)
      if (!NDJSON_FIELDS.has(f))
        return {
          line,
          error: `unknown field ${JSON.stringify(f)}: an entry has key, pid and optionally namespace, node, meta, pidStart, registeredAt, updatedAt`,
        };
    return { line, raw: v as RawEntry };
  };
  stream.setEncoding('utf8');
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      const out: Item[] = [];
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        const it = item(text.charCodeAt(nl - 1) === 13 ? text.slice(start, nl - 1) : text.slice(start, nl));
        start = nl + 1;
        if (it) out.push(it);
      }
      carry = text.slice(start);
      if (out.length) yield out;
    }
  } catch (e) {
    if (e instanceof RegistryError) throw e;
    throw readError(label, e);
  }
  const last = item(carry);
  if (last) yield [last];
}

export async function* csvItems(stream: Readable, label: string): AsyncGenerator<Item[]> {
  const { parse } = await import('csv-parse');
  const parser = stream.pipe(
    parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true, trim: false }),
  );
  let columns: Array<(raw: RawEntry, value: string) => void> | undefined;
  let width = 0;
  let n = 0;
  try {
    for await (const rec of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = rec.info.lines;
      if (!columns) {
        ({ columns, width } = csvHeader(rec.record, label, line));
        continue;
      }
      n++;
      if (rec.record.length !== width) {
        yield [{ line, error: `${rec.record.length} columns, the header has ${width}` }];
        continue;
      }
      const raw: RawEntry = { key: undefined, pid: undefined };
      rec.record.forEach((v, i) => columns![i]!(raw, v));
      yield [{ line, raw }];
    }
  } catch (e) {
    if (e instanceof RegistryError) throw e;
    const err = e as Error & { code?: string; lines?: number };
    if (typeof err.code !== 'string' || !err.code.startsWith('CSV_')) throw readError(label, e);
    yield [
      {
        line: err.lines ?? n + 1,
        error: `not valid CSV (${err.message.replace(/^[^:]*: /, '')}), the rest of the input cannot be read`,
        fatal: true,
      },
    ];
  } finally {
    stream.unpipe(parser);
    parser.destroy();
  }
}

/** The CSV header: `key` and `pid` required; `node`, `namespace` and `meta.FIELD` columns optional. */
function csvHeader(
  header: string[],
  label: string,
  line: number,
): { columns: Array<(raw: RawEntry, value: string) => void>; width: number } {
  const seen = new Set<string>();
  const columns = header.map((name): ((raw: RawEntry, value: string) => void) => {
    const col = name.trim();
    if (seen.has(col)) throw new InvalidInputError(`${label} line ${line}: the column ${col} is given twice`);
    seen.add(col);
    if (col === 'key' || col === 'pid') return (raw, v) => void (raw[col] = v);
    if (col === 'node' || col === 'namespace') return (raw, v) => void (v === '' ? undefined : (raw[col] = v));
    if (col.startsWith('meta.') && col.length > 5) {
      const field = col.slice(5);
      return (raw, v) => {
        if (v === '') return;
        raw.meta = { ...(raw.meta ?? {}), ...parseMetaPairs([`${field}=${v}`]) };
      };
    }
    throw new InvalidInputError(
      `${label} line ${line}: unknown column ${JSON.stringify(col)}: the header names key, pid and optionally node, namespace and meta.FIELD columns`,
    );
  });
  if (!seen.has('key') || !seen.has('pid'))
    throw new InvalidInputError(
      `${label} line ${line}: the header must name the key and pid columns (key,pid[,node,namespace,meta.FIELD…]), got ${JSON.stringify(header.join(','))}`,
    );
  return { columns, width: header.length };
}
