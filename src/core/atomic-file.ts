/**
 * Whole-or-nothing file writes: a temporary file in the same directory, fsync, rename over the
 * target, fsync the directory. A crash or an error (ENOSPC, EACCES) leaves the old file as it was
 * and no temporary file behind.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    const fd = openSync(tmp, 'w', opts.mode ?? 0o644);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Make a rename in `dir` durable; a no-op where directories cannot be opened (some filesystems). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort: the rename itself already happened
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
