/**
 * A pause point for race tests (core: imports nothing of procreg). With
 * `PROCREG_TEST_PAUSE=<point>:<dir>` in its environment, a process reaching `testPause(<point>)`
 * writes `<dir>/<point>.ready` and waits until `<dir>/<point>.go` exists (at most 60 s), so a test
 * can make a real conflicting write at exactly that moment from another process. Without the
 * variable, or for another point, it returns at once.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export async function testPause(point: string): Promise<void> {
  const spec = process.env.PROCREG_TEST_PAUSE;
  if (!spec || !spec.startsWith(`${point}:`)) return;
  const dir = spec.slice(point.length + 1);
  writeFileSync(join(dir, `${point}.ready`), String(process.pid));
  const deadline = Date.now() + 60_000;
  while (!existsSync(join(dir, `${point}.go`))) {
    if (Date.now() > deadline) throw new Error(`test pause ${point}: no ${point}.go in ${dir} within 60 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
