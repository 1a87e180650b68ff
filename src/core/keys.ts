/** Key order shared by every layer (core: imports nothing). */

/** Compare keys in UTF-8 byte order (what SQLite's BINARY collation and etcd use). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  // For strings without astral/surrogate characters UTF-16 order equals code point order equals
  // UTF-8 byte order; fall back to Buffer compare otherwise.
  if (/[\ud800-\udfff]/.test(a) || /[\ud800-\udfff]/.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : 1;
}
