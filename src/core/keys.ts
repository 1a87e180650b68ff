/** Key order shared by every layer (core: imports nothing). */

/** Compare keys in UTF-8 byte order (what SQLite's BINARY collation and etcd use). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  // For strings without astral/surrogate characters UTF-16 order equals code point order equals
  // UTF-8 byte order; fall back to Buffer compare otherwise.
  if (/[\ud800-\udfff]/.test(a) || /[\ud800-\udfff]/.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : 1;
}

/**
 * Two streams ordered by `compareKeys` walked side by side (a merge join): each key once, with the
 * entry of each side that has it (undefined on the side that does not).
 */
export async function* zipByKey<T extends { key: string }>(
  a: AsyncIterator<T>,
  b: AsyncIterator<T>,
): AsyncGenerator<[T | undefined, T | undefined]> {
  let x = await a.next();
  let y = await b.next();
  while (!x.done || !y.done) {
    const c = x.done ? 1 : y.done ? -1 : compareKeys(x.value.key, y.value.key);
    yield [c <= 0 && !x.done ? x.value : undefined, c >= 0 && !y.done ? y.value : undefined];
    if (c <= 0) x = await a.next();
    if (c >= 0) y = await b.next();
  }
}
