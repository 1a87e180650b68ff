import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'procreg-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let n = 0;
/** A key unique in this test run. */
export function uniqueKey(prefix = 'k'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${(n++).toString(36)}`;
}
