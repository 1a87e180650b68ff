/**
 * Reading a dump for `restore` (split from dump.ts): the header, each entry line parsed and
 * validated, the count, digest and namespaces checked against the header.
 *
 * Three ways to read, for the three ways a backend applies a restore (src/registry/dump.ts):
 * - `readChecked`: one pass, batches as they are read and checked; the iteration throws after
 *   the last batch when the count or digest does not match. For a backend that publishes nothing
 *   before the iteration has ended (SQLite's staging table and swap).
 * - `checkDump` then `readBatches`: the whole file checked first, then read again (a node's
 *   upload, etcd's journal, backends without all-or-nothing).
 * - `forEachLineSync` with a `DumpCheck`: synchronous, inside a local transaction.
 *
 * The asynchronous readers take the file in 64 KiB reads, each awaited: a slice of lines at a
 * time, so the event loop runs between slices (a 1M-entry dump no longer holds it for seconds).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { InvalidInputError, RegistryError, type Registration } from '../backends/contract.js';
import { BucketDigester } from './digest.js';
import type { ProcessRegistry } from './service.js';

export const DUMP_VERSION = 1;

export interface DumpHeader {
  procreg: 'dump';
  version: number;
  count: number;
  digest: string;
  namespaces: string[];
  createdAt: number;
  source: string;
}

/** What a whole checked dump holds. */
export interface CheckedDump {
  count: number;
  digest: string;
  namespaces: string[];
}

const READ_BYTES = 64 << 10;

/**
 * Read a dump's lines synchronously, in 1 MiB chunks: `fn(line, lineNumber)` for each non-empty
 * line. `path` '-' is standard input.
 */
export function forEachLineSync(path: string, fn: (line: string, n: number) => void): void {
  let fd: number;
  try {
    fd = path === '-' ? 0 : openSync(path, 'r');
  } catch (cause) {
    throw new InvalidInputError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  if (path !== '-' && fstatSync(fd).isDirectory()) {
    closeSync(fd);
    throw new InvalidInputError(`${path} is a directory: give a dump file`);
  }
  const chunk = Buffer.allocUnsafe(1 << 20);
  const lines = new LineSplitter();
  try {
    for (;;) {
      let got: number;
      try {
        got = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        if ((e as NodeJS.ErrnoException).code === 'EOF') break;
        throw e;
      }
      if (got === 0) break;
      lines.push(chunk.subarray(0, got), fn);
    }
    lines.end(fn);
  } finally {
    if (path !== '-') closeSync(fd);
  }
}

/**
 * Bytes to non-empty lines, numbered from 1. A multi-byte character cut by a chunk boundary is
 * kept whole (the decoder holds its first bytes until the rest arrive).
 */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private carry = '';
  private n = 0;

  push(bytes: Buffer, fn: (line: string, n: number) => void): void {
    const text = this.carry + this.decoder.write(bytes);
    const last = text.lastIndexOf('\n');
    if (last < 0) {
      this.carry = text;
      return;
    }
    this.carry = text.slice(last + 1);
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl < 0 || nl > last) break;
      this.n++;
      const line = text.slice(from, nl);
      if (line.trim() !== '') fn(line, this.n);
      from = nl + 1;
    }
  }

  end(fn: (line: string, n: number) => void): void {
    const rest = this.carry + this.decoder.end();
    this.carry = '';
    if (rest.trim() !== '') fn(rest, ++this.n);
  }
}

/** The non-empty lines of a file in slices (one 64 KiB read each), read asynchronously. */
async function* lineSlices(path: string): AsyncGenerator<Array<[line: string, n: number]>> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (cause) {
    throw new InvalidInputError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    if ((await fh.stat()).isDirectory()) throw new InvalidInputError(`${path} is a directory: give a dump file`);
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    const lines = new LineSplitter();
    let slice: Array<[string, number]> = [];
    const take = (line: string, n: number) => void slice.push([line, n]);
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      lines.push(chunk.subarray(0, bytesRead), take);
      if (slice.length) {
        yield slice;
        slice = [];
      }
    }
    lines.end(take);
    if (slice.length) yield slice;
  } finally {
    await fh.close();
  }
}

export function parseHeader(line: string, n: number, file: string): DumpHeader {
  let h: DumpHeader;
  try {
    h = JSON.parse(line);
  } catch {
    throw new InvalidInputError(
      `${file} line ${n}: not a procreg dump header (not JSON): make dumps with \`registry dump\``,
    );
  }
  if (!h || h.procreg !== 'dump')
    throw new InvalidInputError(
      `${file} is not a procreg dump (the first line has no "procreg":"dump" header): make dumps with \`registry dump\``,
    );
  if (h.version !== DUMP_VERSION)
    throw new InvalidInputError(`${file} is a version ${h.version} dump; this procreg reads version ${DUMP_VERSION}`);
  return h;
}

/** The header of the dump at `source` (its first non-empty line), read asynchronously. */
export async function readDumpHeader(source: string, file: string): Promise<DumpHeader> {
  for await (const slice of lineSlices(source)) {
    const [line, n] = slice[0]!;
    return parseHeader(line, n, file);
  }
  throw new InvalidInputError(`${file} is empty: not a procreg dump`);
}

/**
 * The check of a dump's entries as they are read: each line parsed and validated into a complete
 * registration, the digest and namespaces accumulated; `finish()` compares them with the header.
 */
export class DumpCheck {
  /** One bucket: the dump's digest. `addStored` reads the metadata's canonical JSON off its text. */
  private readonly digest = new BucketDigester(1);
  private n = 0;
  private readonly seen = new Set<string>();
  private header: DumpHeader | undefined;

  constructor(
    private readonly reg: ProcessRegistry,
    /** How messages name the dump. */
    private readonly file: string,
  ) {}

  get count(): number {
    return this.n;
  }

  /** A line of the file: the header (the first one) or an entry, returned. */
  line(line: string, n: number): Registration | undefined {
    if (!this.header) {
      this.header = parseHeader(line, n, this.file);
      return undefined;
    }
    const e = parseEntry(this.reg, line, n, this.file);
    this.seen.add(e.namespace);
    this.digest.addStored(e.namespace, e.key, e.pid, e.node, JSON.stringify(e.meta));
    this.n++;
    return e;
  }

  /** After the last line: the count and digest against the header; throws InvalidInputError otherwise. */
  finish(): CheckedDump {
    const { file, header, n } = this;
    if (!header) throw new InvalidInputError(`${file} is empty: not a procreg dump`);
    if (n !== header.count) {
      throw new InvalidInputError(
        `${file} holds ${n} entries but its header says ${header.count}: the dump is truncated; nothing was restored`,
      );
    }
    const digest = this.digest.result().digests[0]!;
    if (digest !== header.digest) {
      throw new InvalidInputError(
        `${file}: the entries do not match the header's digest (edited or corrupted dump); nothing was restored`,
      );
    }
    return { count: n, digest, namespaces: [...this.seen].sort() };
  }
}

/** Parse and validate one entry line into a complete registration. */
function parseEntry(reg: ProcessRegistry, line: string, n: number, file: string): Registration {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(line);
  } catch (cause) {
    throw new InvalidInputError(
      `${file} line ${n}: not valid JSON (${(cause as Error).message}); nothing was restored`,
      { cause },
    );
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new InvalidInputError(`${file} line ${n}: expected a registration object; nothing was restored`);
  try {
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    return reg.makeEntry(v.key as string, v.pid as number, v.meta as Record<string, unknown>, {
      namespace: v.namespace as string,
      node: v.node as string,
      pidStart: v.pidStart === undefined ? null : (v.pidStart as number | null),
      registeredAt: num(v.registeredAt),
      updatedAt: num(v.updatedAt),
    });
  } catch (err) {
    if (err instanceof RegistryError)
      throw new InvalidInputError(`${file} line ${n}: ${err.message}; nothing was restored`, { cause: err });
    throw err;
  }
}

/** Every line of `source` checked (nothing kept), read asynchronously. */
export async function checkDump(
  reg: ProcessRegistry,
  source: string,
  file: string,
  onProgress?: (n: number) => void,
): Promise<CheckedDump> {
  const check = new DumpCheck(reg, file);
  let reported = 0;
  for await (const slice of lineSlices(source)) {
    for (const [line, n] of slice) check.line(line, n);
    if (check.count - reported >= 50_000) onProgress?.((reported = check.count));
  }
  return check.finish();
}

/**
 * The entries of `source` in batches of `size`, each line checked as it is read: one pass. After
 * the last batch the count and digest are compared with the header: the iteration throws there
 * when they differ, and otherwise calls `done` with the checked totals before it ends.
 */
export async function* readChecked(
  reg: ProcessRegistry,
  source: string,
  file: string,
  size: number,
  done: (c: CheckedDump) => void,
  onProgress?: (n: number) => void,
): AsyncGenerator<Registration[]> {
  const check = new DumpCheck(reg, file);
  let batch: Registration[] = [];
  for await (const slice of lineSlices(source)) {
    for (const [line, n] of slice) {
      const e = check.line(line, n);
      if (!e) continue;
      batch.push(e);
      if (batch.length >= size) {
        yield batch;
        batch = [];
        onProgress?.(check.count);
      }
    }
  }
  const checked = check.finish();
  if (batch.length) yield batch;
  done(checked);
}

/** The entries of an already checked dump in batches of `size`, read asynchronously. */
export async function* readBatches(
  reg: ProcessRegistry,
  source: string,
  file: string,
  size: number,
  onProgress?: (n: number) => void,
): AsyncGenerator<Registration[]> {
  yield* readChecked(reg, source, file, size, () => undefined, onProgress);
}
