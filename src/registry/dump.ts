/**
 * Dump and restore (NDJSON). A dump is a header line followed by one registration per line,
 * sorted by namespace then key:
 *
 *   {"procreg":"dump","version":1,"count":2,"digest":"<hex>","namespaces":["default"],"createdAt":…,"source":"sqlite:…"}
 *   {"namespace":"default","key":"a","pid":41,"node":"h","meta":{},"registeredAt":…,"updatedAt":…,"pidStart":…}
 *
 * `digest` is the order-independent digest of src/registry/digest.ts over the entries, so a
 * restore can prove it read back exactly what was dumped. Restore is all-or-nothing (docs/restore.md):
 * every line is checked before the first write, then a backend with transactions applies it in one
 * transaction, a node and etcd by their staged protocols (`restoreAll`).
 * Files are read with a synchronous chunked line reader: bounded memory, and usable inside a
 * synchronous SQLite transaction.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  fsync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  InvalidInputError,
  RegistryError,
  type Registration,
  type RestoreApplied,
  type RestorePlan,
  UnreachableError,
} from '../backends/contract.js';
import { Digest } from './digest.js';
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

export interface DumpResult {
  count: number;
  digest: string;
  namespaces: string[];
}

/**
 * Write a dump of `namespaces` (default: all) to `out` (a file path, or a stream such as stdout).
 * Entries are spooled to a temporary file while the digest accumulates, then the header and the
 * body are written: one read of the backend, constant memory.
 *
 * A file is never written in place: the dump goes to `.NAME.tmp-<pid>-<rand>` in the same
 * directory, is fsynced, renamed over NAME and the directory fsynced. On any failure (disk full,
 * a backend error, a signal) the temporary files are removed and an existing NAME is untouched.
 */
export async function dump(
  reg: ProcessRegistry,
  opts: { namespaces?: string[]; out: string | Writable; onProgress?: (n: number) => void },
): Promise<DumpResult> {
  const target = typeof opts.out === 'string' ? checkOutputPath(opts.out) : undefined;
  const namespaces = opts.namespaces ?? (await reg.namespaces());
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const spool = target
    ? join(dirname(target), `.${basename(target)}.tmp-${tag}.body`)
    : join(tmpdir(), `.procreg-dump-${tag}.tmp`);
  const temp = target ? join(dirname(target), `.${basename(target)}.tmp-${tag}`) : undefined;
  let fd: number | undefined;
  let renamed = false;
  try {
    fd = openOrFail(spool, target);
    const digest = new Digest();
    const present: string[] = [];
    let buf = '';
    for (const namespace of [...namespaces].sort()) {
      let any = false;
      for await (const e of reg.entries({ namespace, pageSize: 2000 })) {
        any = true;
        digest.add(e);
        buf += `${JSON.stringify(dumpLine(e))}\n`;
        if (buf.length > 1 << 20) {
          writeOrFail(fd, buf, target);
          buf = '';
          opts.onProgress?.(digest.count);
        }
      }
      if (any) present.push(namespace);
    }
    writeOrFail(fd, buf, target);
    closeSync(fd);
    fd = undefined;
    const header: DumpHeader = {
      procreg: 'dump',
      version: DUMP_VERSION,
      count: digest.count,
      digest: digest.hex(),
      namespaces: present,
      createdAt: Date.now(),
      source: reg.url,
    };
    if (target && temp) {
      const out = (fd = openOrFail(temp, target));
      writeOrFail(fd, `${JSON.stringify(header)}\n`, target);
      await copyInto(spool, fd, target);
      try {
        // In the thread pool: an fsync of a large dump would hold the event loop.
        await new Promise<void>((res, rej) => fsync(out, (err) => (err ? rej(err) : res())));
        closeSync(fd);
        fd = undefined;
        renameSync(temp, target);
        renamed = true;
        fsyncDir(dirname(target));
      } catch (e) {
        throw outputError(target, e);
      }
    } else {
      const out = opts.out as Writable;
      await new Promise<void>((res, rej) =>
        out.write(`${JSON.stringify(header)}\n`, (err) => (err ? rej(err) : res())),
      );
      for await (const chunk of createReadStream(spool)) {
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
      }
    }
    return { count: header.count, digest: header.digest, namespaces: present };
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    for (const f of renamed || !temp ? [spool] : [spool, temp]) {
      try {
        unlinkSync(f);
      } catch {
        // never created, or already gone
      }
    }
  }
}

/**
 * Refuse an output path that cannot be a file before reading the store: a missing directory or a
 * directory given as the file (exit 2, naming the path the user gave). Returns the path.
 */
function checkOutputPath(out: string): string {
  const dir = dirname(out);
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new InvalidInputError(
      `cannot write ${out}: the directory ${dir} does not exist: create it or pick another --output`,
    );
  }
  if (!st.isDirectory())
    throw new InvalidInputError(`cannot write ${out}: ${dir} is not a directory: pick another --output`);
  try {
    if (statSync(out).isDirectory())
      throw new InvalidInputError(`${out} is a directory: give --output a file path, e.g. ${join(out, 'dump.ndjson')}`);
  } catch (e) {
    if (e instanceof RegistryError) throw e;
  }
  return out;
}

/** A failure to write the dump file: it names the file the user asked for, never a temporary one. */
function outputError(target: string, cause: unknown): RegistryError {
  if (cause instanceof RegistryError) return cause;
  const code = (cause as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'no space left on the device'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'read-only file system'
          : ((cause as Error)?.message ?? String(cause));
  return new UnreachableError(
    `cannot write ${target}: ${why}${code && !why.includes(code) ? ` (${code})` : ''}; ${existsSync(target) ? `${target} was left as it was` : 'no file was written'}: free space or pick another --output`,
    { cause, recoverable: false },
  );
}

function openOrFail(path: string, target: string | undefined): number {
  try {
    return openSync(path, 'wx', 0o600);
  } catch (e) {
    throw target ? outputError(target, e) : e;
  }
}

/** Write all of `data` (a short write is retried: the next one reports ENOSPC). */
function writeOrFail(fd: number, data: string | Buffer, target: string | undefined, length?: number): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const end = length ?? buf.length;
  try {
    for (let off = 0; off < end;) off += writeSync(fd, buf, off, end - off);
  } catch (e) {
    throw target ? outputError(target, e) : e;
  }
}

/** Append the file at `from` to `fd`, a MiB at a time, yielding to the event loop between them. */
async function copyInto(from: string, fd: number, target: string): Promise<void> {
  const src = openSync(from, 'r');
  const chunk = Buffer.allocUnsafe(1 << 20);
  try {
    for (let got; (got = readSync(src, chunk, 0, chunk.length, null)) > 0;) {
      writeOrFail(fd, chunk, target, got);
      await new Promise<void>((r) => setImmediate(r));
    }
  } finally {
    closeSync(src);
  }
}

/** fsync a directory so a rename in it survives a crash (not every file system allows it). */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function dumpLine(e: Registration) {
  return {
    namespace: e.namespace,
    key: e.key,
    pid: e.pid,
    node: e.node,
    meta: e.meta,
    registeredAt: e.registeredAt,
    updatedAt: e.updatedAt,
    pidStart: e.pidStart ?? null,
  };
}

export interface RestoreResult {
  mode: 'merge' | 'replace';
  restored: number;
  /** Entries removed first by --mode replace. */
  cleared: number;
  digest: string;
  namespaces: string[];
}

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
  let carry = '';
  let n = 0;
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
      const text = carry + chunk.toString('utf8', 0, got);
      // Do not split a multi-byte character: utf8 decoding of a cut sequence yields U+FFFD only at
      // the very end, and lines end in '\n' (ASCII), so cutting at the last '\n' is safe as long as
      // the decoder sees whole sequences — keep the tail bytes raw instead.
      const last = text.lastIndexOf('\n');
      if (last < 0) {
        carry = text;
        continue;
      }
      const body = text.slice(0, last);
      carry = text.slice(last + 1);
      for (const line of body.split('\n')) {
        n++;
        if (line.trim() !== '') fn(line, n);
      }
    }
    if (carry.trim() !== '') fn(carry, ++n);
  } finally {
    if (path !== '-') closeSync(fd);
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

/**
 * Restore a dump. `replace`: the store ends up holding exactly the dump. The whole file is read
 * and checked (every line, the count, the digest) before anything is written; then the backend
 * applies it all or nothing (`restoreInto`).
 */
export async function restore(
  reg: ProcessRegistry,
  file: string,
  opts: {
    mode?: 'merge' | 'replace';
    onProgress?: (n: number) => void;
    id?: string;
    label?: string;
    /** Register's rule inside the commit (a node committing an `import --atomic`: src/registry/restore-guard.ts). */
    guard?: RestorePlan['guard'];
  } = {},
): Promise<RestoreResult & { recovered?: RestoreApplied['recovered'] }> {
  const mode = opts.mode ?? 'merge';
  /** How messages name the dump (a node names the upload, not its staging file). */
  const label = opts.label ?? file;
  // Standard input is spooled so it can be read more than once.
  let source = file;
  let spooled: string | undefined;
  if (file === '-') {
    spooled = join(tmpdir(), `.procreg-restore-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const out = openSync(spooled, 'w', 0o600);
    try {
      forEachLineSync('-', (line) => writeSync(out, `${line}\n`));
    } finally {
      closeSync(out);
    }
    source = spooled;
  }
  try {
    const checked = readDump(reg, source, label, () => undefined, opts.onProgress);
    const plan: RestorePlan = {
      id: opts.id ?? `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`,
      mode,
      count: checked.count,
      digest: checked.digest,
      namespaces: checked.namespaces,
      forEachSync: (fn) => void readDump(reg, source, label, fn),
      batches: (size) => batchesOf(reg, source, label, size, opts.onProgress),
      ...(opts.guard ? { guard: opts.guard } : {}),
    };
    const applied = await reg.restorePlan(plan);
    return {
      mode,
      restored: checked.count,
      cleared: applied.cleared,
      digest: checked.digest,
      namespaces: checked.namespaces,
      ...(applied.recovered ? { recovered: applied.recovered } : {}),
    };
  } finally {
    if (spooled) unlinkSync(spooled);
  }
}

/** Moved to the service's store operations; kept here for its importers. */
export { restoreInto } from './service-store.js';

function readHeader(line: string, n: number, file: string): DumpHeader {
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

/**
 * Read `source` (named `file` in messages) whole: every entry parsed and validated, passed to
 * `onEntry`; the count and digest checked against the header. Throws InvalidInputError otherwise.
 */
function readDump(
  reg: ProcessRegistry,
  source: string,
  file: string,
  onEntry: (e: Registration) => void,
  onProgress?: (n: number) => void,
): { count: number; digest: string; namespaces: string[] } {
  let header: DumpHeader | undefined;
  const digest = new Digest();
  const seen = new Set<string>();
  forEachLineSync(source, (line, n) => {
    if (!header) {
      header = readHeader(line, n, file);
      return;
    }
    const e = parseEntry(reg, line, n, file);
    seen.add(e.namespace);
    digest.add(e);
    onEntry(e);
    if (digest.count % 50_000 === 0) onProgress?.(digest.count);
  });
  if (!header) throw new InvalidInputError(`${file} is empty: not a procreg dump`);
  if (digest.count !== header.count) {
    throw new InvalidInputError(
      `${file} holds ${digest.count} entries but its header says ${header.count}: the dump is truncated; nothing was restored`,
    );
  }
  if (digest.hex() !== header.digest) {
    throw new InvalidInputError(
      `${file}: the entries do not match the header's digest (edited or corrupted dump); nothing was restored`,
    );
  }
  return { count: digest.count, digest: digest.hex(), namespaces: [...seen].sort() };
}

/** The entries of a checked dump in batches of `size`, read asynchronously. */
async function* batchesOf(
  reg: ProcessRegistry,
  source: string,
  file: string,
  size: number,
  onProgress?: (n: number) => void,
): AsyncGenerator<Registration[]> {
  const { createInterface } = await import('node:readline');
  let batch: Registration[] = [];
  let first = true;
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(source), crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    if (first) {
      first = false;
      continue;
    }
    batch.push(parseEntry(reg, line, n, file));
    if (batch.length >= size) {
      yield batch;
      batch = [];
      onProgress?.(n);
    }
  }
  if (batch.length) yield batch;
}
