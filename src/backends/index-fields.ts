/**
 * Which metadata fields the memory and SQLite backends index, and which `--where` terms an index
 * can answer (docs/indexes.md). The rules are etcd's (src/backends/etcd.ts): the same default
 * fields, every element of a list indexed on its own, long values left to a scan.
 */
import { InvalidInputError } from './contract.js';

/** The seed's optimization-layer index fields (design §3; the same list as etcd's). */
export const DEFAULT_INDEX_FIELDS = ['type', 'agent_type', 'priority', 'capabilities', 'category', 'tier', 'region'];

/** Index values longer than this (UTF-8 bytes) are not indexed: queries for them scan (as on etcd). */
export const MAX_INDEX_VALUE = 200;

/**
 * Check an `indexFields` option: a list of field names (no `"`, `\` or control characters, which
 * a JSON path cannot quote), or undefined for the default.
 */
export function parseIndexFields(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v;
  if (
    !Array.isArray(list) ||
    !list.every(
      (f) =>
        typeof f === 'string' &&
        f.length > 0 &&
        f.length <= 200 &&
        !/["\\\u0000-\u001f]/.test(f) &&
        (f as string & { isWellFormed(): boolean }).isWellFormed(),
    )
  )
    throw new InvalidInputError(
      `invalid indexFields ${JSON.stringify(v)}: give a list of metadata field names, e.g. ["zone", "tier"] (no quotes, backslashes or control characters)`,
    );
  return [...new Set(list as string[])];
}

/**
 * Can the index answer `field = value`? The field must be indexed and the value one the index
 * holds: at most MAX_INDEX_VALUE bytes, not the text of an object or a list (never indexed), and
 * well-formed UTF-16 (a lone surrogate does not survive the trip to SQLite's UTF-8 unchanged).
 */
export function indexable(fields: ReadonlySet<string>, field: string, value: string): boolean {
  return (
    fields.has(field) &&
    Buffer.byteLength(value) <= MAX_INDEX_VALUE &&
    value[0] !== '{' &&
    value[0] !== '[' &&
    (value as string & { isWellFormed(): boolean }).isWellFormed()
  );
}
