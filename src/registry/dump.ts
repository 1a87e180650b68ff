/**
 * Dump and restore (NDJSON). A dump is a header line followed by one registration per line,
 * sorted by namespace then key:
 *
 *   {"procreg":"dump","version":1,"count":2,"digest":"<hex>","namespaces":["default"],"createdAt":…,"source":"sqlite:…"}
 *   {"namespace":"default","key":"a","pid":41,"node":"h","meta":{},"registeredAt":…,"updatedAt":…,"pidStart":…}
 *
 * `digest` is the order-independent digest of src/registry/digest.ts over the entries, so a
 * restore can prove it read back exactly what was dumped. Restore is all-or-nothing (docs/restore.md):
 * nothing is published before every line has been checked; SQLite stages the entries while they
 * are read and checked (one pass) and swaps them in at the end, a node and etcd get a dump checked
 * whole first and apply it by their staged protocols (`restoreAll`), a memory store in one
 * transaction. Reading a dump is in src/registry/dump-read.ts.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
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
import {
  type CheckedDump,
  checkDump,
  DUMP_VERSION,
  type DumpHeader,
  DumpCheck,
  forEachLineSync,
  readBatches,
  readChecked,
  readDumpHeader,
} from './dump-read.js';
import type { ProcessRegistry } from './service.js';

export { DUMP_VERSION, type DumpHeader, forEachLineSync } from './dump-read.js';

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
 * Restore a dump. `replace`: the store ends up holding exactly the dump. Every line is checked
 * (valid, the count and the digest as the header says) before anything is published, then the
 * backend applies it all or nothing (`restoreInto`): SQLite stages the entries while they are
 * read and checked (one pass) and swaps them in only once the whole dump has passed; a node, etcd
 * and the others get a dump checked whole first. The file is read asynchronously in slices: the
 * event loop runs in between.
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
    // A file that is not a dump is refused before the backend is touched.
    const header = await readDumpHeader(source, label);
    let checked: CheckedDump | undefined;
    const checkWhole = async () => (checked ??= await checkDump(reg, source, label, opts.onProgress));
    // A backend without its own staged protocol applies the dump in place: check it whole first.
    if (!reg.backend.restoreAll) await checkWhole();
    const plan: RestorePlan = {
      id: opts.id ?? `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`,
      mode,
      count: header.count,
      digest: header.digest,
      namespaces: Array.isArray(header.namespaces) ? header.namespaces : [],
      // Inside a local transaction: checked again while applied (a throw rolls it back).
      forEachSync: (fn) => {
        const check = new DumpCheck(reg, label);
        forEachLineSync(source, (line, n) => {
          const e = check.line(line, n);
          if (e) fn(e);
        });
        checked = check.finish();
      },
      batches: (size) =>
        (async function* () {
          await checkWhole();
          yield* readBatches(reg, source, label, size, opts.onProgress);
        })(),
      ...(opts.guard ? { guard: opts.guard } : {}),
      readChecked: (size) => readChecked(reg, source, label, size, (c) => (checked = c), opts.onProgress),
    };
    const applied = await reg.restorePlan(plan);
    const done = checked ?? (await checkWhole());
    return {
      mode,
      restored: done.count,
      cleared: applied.cleared,
      digest: done.digest,
      namespaces: done.namespaces,
      ...(applied.recovered ? { recovered: applied.recovered } : {}),
    };
  } finally {
    if (spooled) unlinkSync(spooled);
  }
}

/** Moved to the service's store operations; kept here for its importers. */
export { restoreInto } from './service-store.js';
