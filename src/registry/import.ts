/**
 * `registry import` (docs/import.md): plain NDJSON (one entry per line, no dump header) or CSV
 * (`key,pid[,node,namespace,meta.*]` with a header row), from a file or standard input, streamed
 * and applied in file order.
 *
 * Each entry is registered by register's rule: a key held by another live process is refused
 * (exit 4, the holder named); the same process again, or a dead holder, is replaced.
 *
 * Three ways to meet a line that cannot be written (malformed, invalid, or refused):
 *   - default: stop there. Lines go in atomic batches, so what was written is exactly the lines
 *     before it (a failed batch is rolled back and its prefix written again), and the count says so.
 *   - `skipInvalid`: write every other line, report the skipped ones (line numbers and reasons).
 *   - `atomic`: all or nothing. Every line is read and checked first, into a spool file; then the
 *     store applies the whole import at once: in one transaction where the backend has local
 *     transactions (memory, SQLite); by the staged restore upload (merge mode) through a node and on
 *     etcd, after checking every key against its current holder — and again inside the commit
 *     (`plan.guard`, src/registry/restore-guard.ts): a key taken meanwhile fails it, nothing written.
 */
import { closeSync, createReadStream, openSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  AlreadyRegisteredError,
  type BulkResult,
  type ErrorCode,
  InvalidInputError,
  type Meta,
  OutcomeUnknownError,
  RegistryError,
  type Registration,
  type RegisterOptions,
  type RestorePlan,
  asRegistryError,
} from '../backends/contract.js';
import { Digest } from './digest.js';
import { forEachLineSync } from './dump.js';
import type { ProcessRegistry } from './service.js';
import { notWritten } from './validate.js';
import { registerRule } from './restore-guard.js';
import { csvItems, type Item, ndjsonItems, openInput, type RawEntry } from './import-read.js';

export type ImportFormat = 'ndjson' | 'csv';

export interface ImportOptions {
  format?: ImportFormat;
  /** All or nothing. */
  atomic?: boolean;
  /** Write the other lines and report the ones that cannot be written. */
  skipInvalid?: boolean;
  /** Namespace of lines that name none (default: the registry's). */
  namespace?: string;
  /** Entries per write (default 5000). */
  batchSize?: number;
  /** Called after each batch (and while an atomic import is checked). */
  onProgress?: (p: ImportProgress) => void;
  /** How messages name the input (default: the path, `stdin` for `-`). */
  label?: string;
  /** A stream to read instead of opening `file` (tests, the REPL). */
  input?: Readable;
}

export interface ImportProgress {
  phase: 'reading' | 'checking' | 'applying';
  lines: number;
  written: number;
  bytes: number;
  /** The input's size, when it is a file. */
  totalBytes?: number;
}

/** One line that was not written. */
export interface ImportProblem {
  line: number;
  code: ErrorCode;
  reason: string;
  holder?: Registration;
}

export interface ImportResult {
  format: ImportFormat;
  mode: 'stop-at-first' | 'skip-invalid' | 'atomic';
  /** How the writes were applied: atomic batches, one local transaction, or a staged restore. */
  method: 'batches' | 'transaction' | 'staged';
  /** Entry lines read (blank lines and the CSV header not counted). */
  lines: number;
  written: number;
  skipped: ImportProblem[];
}

/** The import stopped at a line: what was written before it is in `details.written`. */
export class ImportStoppedError extends RegistryError {
  constructor(
    readonly problem: ImportProblem,
    readonly written: number,
    label: string,
    atomic: boolean,
    /** Suggest --skip-invalid: not when it was given, nor for input that cannot be read on. */
    skipHint = true,
  ) {
    super(
      problem.code,
      `${label} line ${problem.line}: ${problem.reason}; ${
        atomic
          ? 'nothing was written (--atomic)'
          : written === 0
            ? 'the import stopped there, nothing was written'
            : `the import stopped there: the ${written} entr${written === 1 ? 'y' : 'ies'} before it ${written === 1 ? 'was' : 'were'} written`
      }${atomic ? '' : `: fix the line and import the rest${skipHint ? ', or pass --skip-invalid' : ''}`}`,
      {
        details: {
          line: problem.line,
          reason: problem.reason,
          written,
          ...(problem.holder ? { holder: problem.holder } : {}),
        },
      },
    );
  }
}

/** Import `file` ('-': standard input) into `reg`. Throws ImportStoppedError at a line that stops it. */
export async function importEntries(
  reg: ProcessRegistry,
  file: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const format = opts.format ?? 'ndjson';
  if (opts.atomic && opts.skipInvalid)
    throw new InvalidInputError(
      '--atomic and --skip-invalid contradict each other: --atomic writes nothing when a line is bad, --skip-invalid writes the others',
    );
  const label = opts.label ?? (file === '-' ? 'stdin' : file);
  const src = openInput(file, opts.input);
  const items = format === 'csv' ? csvItems(src.stream, label) : ndjsonItems(src.stream, label);
  const progress = (phase: ImportProgress['phase'], lines: number, written: number) =>
    opts.onProgress?.({ phase, lines, written, bytes: src.bytes(), totalBytes: src.totalBytes });
  const ns = opts.namespace ?? reg.namespace;
  try {
    if (opts.atomic) return await importAtomic(reg, items, { format, label, namespace: ns, progress });
    return await importBatches(reg, items, {
      format,
      label,
      namespace: ns,
      skip: !!opts.skipInvalid,
      // Local stores take bigger transactions; a remote one gets requests of bounded size.
      batchSize: opts.batchSize ?? (reg.backend.capabilities.synchronous ? 20_000 : 5000),
      progress,
    });
  } finally {
    src.stream.destroy();
  }
}

// --- writing in batches ----------------------------------------------------------------------

interface WriteCtx {
  format: ImportFormat;
  label: string;
  namespace: string;
  progress: (phase: ImportProgress['phase'], lines: number, written: number) => void;
}

/** What a bulk register item is made of a raw line (validated by the service). */
function toItem(raw: RawEntry, namespace: string) {
  return {
    key: raw.key as string,
    // A numeric string (every CSV cell) becomes the number validatePid accepts it as.
    pid: (typeof raw.pid === 'string' && /^\s*\d+\s*$/.test(raw.pid) ? Number(raw.pid) : raw.pid) as number,
    meta: raw.meta === undefined ? {} : (raw.meta as Meta),
    namespace: raw.namespace === undefined ? namespace : (raw.namespace as string),
    node: raw.node as string | undefined,
    pidStart: raw.pidStart as number | null | undefined,
    registeredAt: raw.registeredAt as number | undefined,
    updatedAt: raw.updatedAt as number | undefined,
  };
}

function problemOf(line: number, r: BulkResult): ImportProblem {
  if ('holder' in r)
    return {
      line,
      code: 'ALREADY_REGISTERED',
      reason: `"${r.holder.key}" in namespace "${r.holder.namespace}" is held by pid ${r.holder.pid} on ${r.holder.node}`,
      holder: r.holder,
    };
  const err = (r as { error: RegistryError }).error;
  return { line, code: err.code, reason: err.message };
}

const NOT_WRITTEN = notWritten().message;

/** The first result of a rolled-back atomic batch that failed on its own account (not "not written"). */
function firstFailure(results: BulkResult[]): number {
  return results.findIndex((r) => !r.ok && ('holder' in r || r.error.message !== NOT_WRITTEN));
}

async function importBatches(
  reg: ProcessRegistry,
  items: AsyncIterable<Item[]>,
  o: WriteCtx & { skip: boolean; batchSize: number },
): Promise<ImportResult> {
  const skipped: ImportProblem[] = [];
  let written = 0;
  let lines = 0;
  let batch: Item[] = [];
  // A backend may take smaller atomic batches than asked (etcd: one txn): found by halving, then kept.
  let atomicSize = o.batchSize;

  const result = (): ImportResult => ({
    format: o.format,
    mode: o.skip ? 'skip-invalid' : 'stop-at-first',
    method: 'batches',
    lines,
    written,
    skipped,
  });

  /** Write `part` (atomic), or the lines before its first failure; the failure, if any. */
  const writeAtomic = async (part: Item[]): Promise<ImportProblem | undefined> => {
    for (let from = 0; from < part.length;) {
      const slice = part.slice(from, from + atomicSize);
      let results: BulkResult[];
      try {
        results = await reg.bulkRegister(
          slice.map((it) => toItem(it.raw!, o.namespace)),
          { atomic: true },
        );
      } catch (err) {
        const e = asRegistryError(err);
        if (e.code === 'INVALID_INPUT' && slice.length > 1) {
          atomicSize = Math.max(1, slice.length >> 1);
          continue;
        }
        throw unknownOrNot(e, slice, written, o.label, true);
      }
      const j = firstFailure(results);
      if (j < 0) {
        written += slice.length;
        from += slice.length;
        continue;
      }
      // Rolled back: write the lines before the failure again, then stop at it.
      if (j > 0) {
        const head = await writeAtomic(slice.slice(0, j));
        if (head) return head;
      }
      return problemOf(slice[j]!.line, results[j]!);
    }
    return undefined;
  };

  const writeSkipping = async (part: Item[]) => {
    let results: BulkResult[];
    try {
      results = await reg.bulkRegister(part.map((it) => toItem(it.raw!, o.namespace)));
    } catch (err) {
      throw unknownOrNot(asRegistryError(err), part, written, o.label, false);
    }
    results.forEach((r, i) => {
      if (r.ok) written++;
      else skipped.push(problemOf(part[i]!.line, r));
    });
  };

  const flush = async (): Promise<ImportProblem | undefined> => {
    const part = batch;
    batch = [];
    if (part.length === 0) return undefined;
    if (o.skip) await writeSkipping(part);
    else {
      const stop = await writeAtomic(part);
      if (stop) return stop;
    }
    o.progress('applying', lines, written);
    return undefined;
  };

  for await (const chunk of items)
    for (const it of chunk) {
      lines++;
      if (it.error !== undefined) {
        const problem: ImportProblem = { line: it.line, code: 'INVALID_INPUT', reason: it.error };
        if (o.skip && !it.fatal) {
          skipped.push(problem);
          continue;
        }
        const earlier = await flush();
        throw new ImportStoppedError(earlier ?? problem, written, o.label, false, !o.skip && !(!earlier && it.fatal));
      }
      batch.push(it);
      if (batch.length >= o.batchSize) {
        const stop = await flush();
        if (stop) throw new ImportStoppedError(stop, written, o.label, false, !o.skip);
      }
    }
  const stop = await flush();
  if (stop) throw new ImportStoppedError(stop, written, o.label, false, !o.skip);
  skipped.sort((a, b) => a.line - b.line);
  return result();
}

/** A batch call that threw: its outcome, said as it is (unknown when the store may have applied it). */
function unknownOrNot(e: RegistryError, part: Item[], written: number, label: string, atomic: boolean): RegistryError {
  const lines = `lines ${part[0]?.line}–${part.at(-1)?.line}`;
  const before = `${written} entr${written === 1 ? 'y' : 'ies'} before them ${written === 1 ? 'was' : 'were'} written`;
  if (!atomic)
    // A batch that is not atomic may have been written in part before the failure.
    return new OutcomeUnknownError(
      `${label} ${lines}: ${e.message}; some of them may have been written (look their keys up); ${before}`,
      { cause: e, details: { written, firstLine: part[0]?.line, lastLine: part.at(-1)?.line } },
    );
  if (e.details?.outcome === 'unknown')
    return new OutcomeUnknownError(
      `${label} ${lines}: ${e.message}; whether they were written is unknown (the batch was applied whole or not at all: look one of its keys up); ${before}`,
      { cause: e, details: { written, firstLine: part[0]?.line, lastLine: part.at(-1)?.line } },
    );
  return new RegistryError(e.code, `${label} ${lines}: ${e.message}; they were not written; ${before}`, {
    cause: e,
    recoverable: e.recoverable,
    details: { ...(e.details ?? {}), written, firstLine: part[0]?.line, lastLine: part.at(-1)?.line },
  });
}

// --- all or nothing ---------------------------------------------------------------------------

/**
 * Read and check every line into a spool file (nothing written), then apply the whole import at
 * once: one transaction on a backend with local transactions; otherwise, after checking each key
 * against its holder, the backend's staged restore in merge mode (a node, etcd).
 */
async function importAtomic(reg: ProcessRegistry, items: AsyncIterable<Item[]>, o: WriteCtx): Promise<ImportResult> {
  const backend = reg.backend;
  const local = backend.capabilities.synchronous && !!backend.transaction;
  if (!local && !backend.restoreAll)
    throw new InvalidInputError(
      `--atomic needs local transactions or a staged restore, and the ${backend.url} store has neither: import without --atomic`,
    );
  const spool = join(tmpdir(), `.procreg-import-${process.pid}-${randomBytes(4).toString('hex')}.ndjson`);
  const fd = openSync(spool, 'wx', 0o600);
  let closed = false;
  try {
    const digest = new Digest();
    const namespaces = new Set<string>();
    let lines = 0;
    let buf = '';
    for await (const chunk of items)
      for (const it of chunk) {
        lines++;
        let e: Registration;
        try {
          if (it.error !== undefined) throw new InvalidInputError(it.error);
          const raw = toItem(it.raw!, o.namespace);
          e = reg.makeEntry(raw.key, raw.pid, raw.meta, raw);
          reg.assertRunning(e);
        } catch (err) {
          const x = asRegistryError(err);
          throw new ImportStoppedError({ line: it.line, code: x.code, reason: x.message }, 0, o.label, true);
        }
        digest.add(e);
        namespaces.add(e.namespace);
        buf += `${JSON.stringify([it.line, e])}\n`;
        if (buf.length > 1 << 20) {
          writeAll(fd, buf);
          buf = '';
          o.progress('checking', lines, 0);
        }
      }
    writeAll(fd, buf);
    closeSync(fd);
    closed = true;
    const count = digest.count;
    const each = (fn: (line: number, e: Registration) => void) =>
      forEachLineSync(spool, (text) => {
        const [line, e] = JSON.parse(text) as [number, Registration];
        fn(line, e);
      });
    const result: ImportResult = {
      format: o.format,
      mode: 'atomic',
      method: 'transaction',
      lines,
      written: 0,
      skipped: [],
    };
    if (count === 0) return result;
    o.progress('applying', lines, 0);
    if (local) {
      let current: Registration | undefined;
      const rule: RegisterOptions = {
        replaceIf: (h) => (h.pid === current!.pid && h.node === current!.node) || !reg.isAlive(h),
      };
      backend.transaction!(() =>
        each((line, e) => {
          current = e;
          const r = backend.register(e, rule);
          if (r instanceof Promise) throw new RegistryError('INTERNAL', 'synchronous backend returned a Promise');
          if (!r.ok) throw new ImportStoppedError(problemOf(line, r), 0, o.label, true);
        }),
      );
      return { ...result, written: count };
    }
    await checkHolders(reg, spool, o.label);
    const plan: RestorePlan = {
      id: `import-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`,
      mode: 'merge',
      count,
      digest: digest.hex(),
      namespaces: [...namespaces].sort(),
      forEachSync: (fn) => each((_, e) => fn(e)),
      batches: (size) => entryBatches(spool, size),
      guard: registerRule((e) => reg.isAlive(e)),
    };
    try {
      await backend.restoreAll!(plan);
    } catch (err) {
      // A key taken after checkHolders, refused inside the commit: stop at the line that wanted it.
      if (!(err instanceof AlreadyRegisteredError)) throw err;
      const h = err.holder;
      let line = 0;
      each((l, e) => void (line ||= e.namespace === h.namespace && e.key === h.key ? l : 0));
      throw new ImportStoppedError(problemOf(line, { ok: false, holder: h }), 0, o.label, true);
    }
    return { ...result, method: 'staged', written: count };
  } finally {
    if (!closed) closeSync(fd);
    try {
      unlinkSync(spool);
    } catch {
      // already gone
    }
  }
}

/**
 * Before a staged import (whose commit writes over holders): every key is checked against its
 * current holder and against earlier lines of the import, by register's rule. The commit checks
 * again (`plan.guard`): a key another live process registers after this check fails it (docs/import.md).
 * Keeps one small record per distinct key of the import.
 */
async function checkHolders(reg: ProcessRegistry, spool: string, label: string): Promise<void> {
  const mine = new Map<string, Map<string, { pid: number; node: string; line: number }>>();
  const refuse = (line: number, holder: Registration) => {
    throw new ImportStoppedError(problemOf(line, { ok: false, holder }), 0, label, true);
  };
  for await (const part of spoolBatches(spool, 5000)) {
    for (const [line, e] of part) {
      let keys = mine.get(e.namespace);
      if (!keys) mine.set(e.namespace, (keys = new Map()));
      const earlier = keys.get(e.key);
      if (earlier && !(earlier.pid === e.pid && earlier.node === e.node) && reg.isAlive({ ...e, ...earlier }))
        refuse(line, { ...e, ...earlier });
      if (!earlier) keys.set(e.key, { pid: e.pid, node: e.node, line });
    }
  }
  const against = (h: Registration | undefined, mineOf: Map<string, { pid: number; node: string; line: number }>) => {
    const m = h && mineOf.get(h.key);
    if (h && m && !(h.pid === m.pid && h.node === m.node)) refuse(m.line, h);
  };
  for (const [namespace, keys] of mine) {
    // A store not much larger than the import is read page by page; otherwise each key is looked up.
    if ((await reg.count({ namespace })) <= 4 * keys.size) {
      for await (const h of reg.entries({ namespace, pageSize: 5000 })) against(h, keys);
      continue;
    }
    let batch: string[] = [];
    const check = async () => {
      const holders = await Promise.all(batch.map((key) => reg.lookup(key, { namespace })));
      for (const h of holders) against(h, keys);
      batch = [];
    };
    for (const key of keys.keys()) {
      batch.push(key);
      if (batch.length >= 64) await check();
    }
    await check();
  }
}

/** The spool's `[line, entry]` records in batches of `size`, read asynchronously. */
async function* spoolBatches(spool: string, size: number): AsyncGenerator<Array<[number, Registration]>> {
  const { createInterface } = await import('node:readline');
  let batch: Array<[number, Registration]> = [];
  for await (const text of createInterface({ input: createReadStream(spool), crlfDelay: Infinity })) {
    if (text === '') continue;
    batch.push(JSON.parse(text) as [number, Registration]);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

async function* entryBatches(spool: string, size: number): AsyncGenerator<Registration[]> {
  for await (const part of spoolBatches(spool, size)) yield part.map(([, e]) => e);
}

function writeAll(fd: number, text: string): void {
  const b = Buffer.from(text);
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
}
