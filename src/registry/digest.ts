/**
 * Order-independent digests of registry state (design §5, `verify`).
 *
 * Equivalence compares (namespace, key, pid, node, meta) with metadata in canonical JSON (sorted
 * keys); timestamps only when strict. Each entry hashes to 128 bits (cyrb128, a fast non-cryptographic hash over the
 * UTF-16 code units: equivalence checking is not adversarial, and the hash runs at memory speed); a digest is the
 * lane-wise sum mod 2^32 of four 32-bit lanes over all entries, so it does not depend on order
 * and can be updated entry by entry in O(1) memory. Entries are spread over buckets by the hash of
 * (namespace, key) alone, so the same key lands in the same bucket on both sides and a mismatching
 * bucket can be narrowed down to its keys.
 */
import type { BucketDigests, Registration } from '../backends/contract.js';

/** JSON with object keys sorted at every depth. */
export function canonicalJson(v: unknown): string {
  // Most metadata is already canonical (few keys, written in order): let JSON.stringify do it.
  if (isCanonical(v)) return JSON.stringify(v) ?? 'null';
  return sortedJson(v);
}

function sortedJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + sortedJson(v[i]);
    return out + ']';
  }
  const keys = Object.keys(v as object);
  if (keys.length > 1) keys.sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(k) + ':' + sortedJson(x);
    first = false;
  }
  return out + '}';
}

/**
 * canonicalJson of a value straight from JSON.parse (plain JSON data, no undefined, functions or
 * toJSON): one native JSON.stringify of a copy with keys inserted in sorted order. Objects whose
 * keys must be reordered and include array-index-like keys (the engine orders those numerically)
 * or `__proto__` take the general path.
 */
export function canonicalParsedJson(v: unknown): string {
  const c = sortedCopy(v);
  return c === REORDER_UNSAFE ? sortedJson(v) : JSON.stringify(c);
}

const REORDER_UNSAFE = Symbol('reorder-unsafe');

/** `v` itself when already canonical, else a copy with sorted keys; REORDER_UNSAFE when no copy can be. */
function sortedCopy(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const c = sortedCopy(v[i]);
      if (c === REORDER_UNSAFE) return c;
      if (c !== v[i]) (out ??= v.slice())[i] = c;
    }
    return out ?? v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let inOrder = true;
  for (let i = 1; i < keys.length; i++) {
    if (!(keys[i - 1] < keys[i])) {
      inOrder = false;
      break;
    }
  }
  let changed = !inOrder;
  const values: unknown[] = new Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const c = sortedCopy(o[keys[i]]);
    if (c === REORDER_UNSAFE) return c;
    values[i] = c;
    if (c !== o[keys[i]]) changed = true;
  }
  if (!changed) return v;
  const order = keys.map((_, i) => i);
  if (!inOrder) order.sort((a, b) => (keys[a] < keys[b] ? -1 : 1));
  const out: Record<string, unknown> = {};
  for (const i of order) {
    const k = keys[i];
    const c0 = k.charCodeAt(0);
    if ((c0 >= 48 && c0 <= 57) || k === '__proto__') return REORDER_UNSAFE;
    out[k] = values[i];
  }
  return out;
}

/** Keys in ascending order at every depth, no undefined values, no toJSON surprises. */
function isCanonical(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return v !== undefined;
  if (Array.isArray(v)) {
    for (const x of v) if (x === undefined || !isCanonical(x)) return false;
    return true;
  }
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  let prev: string | undefined;
  for (const k in v as object) {
    if (prev !== undefined && !(prev < k)) return false;
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined || !isCanonical(x)) return false;
    prev = k;
  }
  return true;
}

/** The text an entry is compared by. */
export function entryIdentity(e: Registration, strict = false): string {
  const base = `${JSON.stringify(e.namespace)},${JSON.stringify(e.key)},${e.pid},${JSON.stringify(e.node)},${canonicalJson(e.meta)}`;
  return strict ? `${base},${e.registeredAt},${e.updatedAt}` : base;
}

/** 32-bit bucket selector of a (namespace, key): FNV-1a over the UTF-16 code units. */
export function bucketOf(namespace: string, key: string, buckets: number): number {
  // The code units of `${namespace}\u0000${key}`, without building that string.
  let h = 0x811c9dc5;
  for (let i = 0; i < namespace.length; i++) {
    h ^= namespace.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h = Math.imul(h, 0x01000193); // ^= 0 is a no-op
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % buckets;
}

/**
 * cyrb128 (public domain, bryc): four 32-bit lanes with cross-lane mixing and a final avalanche.
 * Writes into `out` to avoid an allocation per entry.
 */
export function hash128(str: string, out: Uint32Array): void {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}

const scratch = new Uint32Array(4);

/** An accumulating, order-independent digest. */
export class Digest {
  readonly lanes = new Uint32Array(4);
  count = 0;

  addText(text: string): void {
    hash128(text, scratch);
    const l = this.lanes;
    l[0] += scratch[0];
    l[1] += scratch[1];
    l[2] += scratch[2];
    l[3] += scratch[3];
    this.count++;
  }

  /** Undo addText (for incremental maintenance). */
  removeText(text: string): void {
    hash128(text, scratch);
    const l = this.lanes;
    l[0] -= scratch[0];
    l[1] -= scratch[1];
    l[2] -= scratch[2];
    l[3] -= scratch[3];
    this.count--;
  }

  add(e: Registration, strict = false): void {
    this.addText(entryIdentity(e, strict));
  }

  hex(): string {
    let s = '';
    for (const l of this.lanes) s += l.toString(16).padStart(8, '0');
    return s;
  }
}

/** Per-bucket digests over an iterable of entries (the fallback for backends without `digest`). */
export class BucketDigester {
  private readonly parts: Digest[];
  private lastNs: string | undefined;
  private nsJson = '';
  private lastNode: string | undefined;
  private nodeJson = '';
  constructor(readonly buckets: number, readonly strict = false) {
    this.parts = Array.from({ length: buckets }, () => new Digest());
  }
  add(e: Registration): void {
    this.parts[bucketOf(e.namespace, e.key, this.buckets)].add(e, this.strict);
  }
  /**
   * A stored row (metadata as its stored JSON text), non-strict: the same identity text as
   * `add` of the parsed entry, built with the namespace's and the last node's JSON reused.
   */
  addStored(namespace: string, key: string, pid: number, node: string, metaText: string): void {
    if (namespace !== this.lastNs) {
      this.lastNs = namespace;
      this.nsJson = JSON.stringify(namespace) + ',';
    }
    if (node !== this.lastNode) {
      this.lastNode = node;
      this.nodeJson = JSON.stringify(node) + ',';
    }
    const meta = metaText === '{}' ? '{}' : canonicalParsedJson(JSON.parse(metaText));
    this.parts[bucketOf(namespace, key, this.buckets)].addText(this.nsJson + JSON.stringify(key) + ',' + pid + ',' + this.nodeJson + meta);
  }
  result(): BucketDigests {
    return { buckets: this.buckets, digests: this.parts.map((d) => d.hex()), counts: this.parts.map((d) => d.count) };
  }
}
