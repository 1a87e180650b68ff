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
  const keys = Object.keys(v);
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
  let prev: string | undefined;
  for (const k of keys) {
    if (prev !== undefined && !(prev < k)) {
      inOrder = false;
      break;
    }
    prev = k;
  }
  let changed = !inOrder;
  const members: Array<[key: string, value: unknown]> = [];
  for (const k of keys) {
    const x = o[k];
    const c = sortedCopy(x);
    if (c === REORDER_UNSAFE) return c;
    members.push([k, c]);
    if (c !== x) changed = true;
  }
  if (!changed) return v;
  if (!inOrder) members.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const out: Record<string, unknown> = {};
  for (const [k, c] of members) {
    const c0 = k.charCodeAt(0);
    if ((c0 >= 48 && c0 <= 57) || k === '__proto__') return REORDER_UNSAFE;
    out[k] = c;
  }
  return out;
}

/**
 * The canonical JSON of a stored metadata text read straight off the text, when it is a flat
 * object (no whitespace) of plain members: keys and string values without escapes, control
 * characters or surrogates, integers of at most 15 digits (not -0), true, false, null. Then each
 * member's text is already what JSON.stringify writes, and canonical JSON is those members in key
 * order. Anything else (nesting, escapes, other numbers, duplicate keys) gives undefined.
 */
export function canonicalFlatObjectText(t: string): string | undefined {
  const n = t.length;
  if (n < 2 || t.charCodeAt(0) !== 123 || t.charCodeAt(n - 1) !== 125) return undefined;
  if (n === 2) return t;
  const keys: string[] = [];
  const members: string[] = [];
  let sorted = true;
  let i = 1;
  for (;;) {
    const start = i;
    const keyEnd = plainStringEnd(t, i);
    if (keyEnd < 0 || t.charCodeAt(keyEnd) !== 58) return undefined;
    const key = t.slice(start + 1, keyEnd - 1);
    i = keyEnd + 1;
    const c = t.charCodeAt(i);
    if (c === 34) i = plainStringEnd(t, i);
    else if (c === 45 || (c >= 48 && c <= 57)) i = integerEnd(t, i);
    else if (t.startsWith('true', i) || t.startsWith('null', i)) i += 4;
    else if (t.startsWith('false', i)) i += 5;
    else return undefined;
    if (i < 0) return undefined;
    if (keys.length && !(item(keys, keys.length - 1) < key)) sorted = false;
    keys.push(key);
    members.push(t.slice(start, i));
    const d = t.charCodeAt(i);
    if (d === 44) i++;
    else if (d === 125 && i === n - 1) break;
    else return undefined;
  }
  if (sorted) return t;
  // Insertion sort of member indexes by key (metadata has few keys).
  const order: number[] = [];
  for (let j = 0; j < keys.length; j++) {
    const key = item(keys, j);
    let p = j;
    while (p > 0 && item(keys, item(order, p - 1)) > key) {
      order[p] = item(order, p - 1);
      p--;
    }
    order[p] = j;
  }
  let out = '{';
  let prev: string | undefined;
  for (const j of order) {
    const key = item(keys, j);
    if (key === prev) return undefined; // a duplicate key: JSON.parse keeps the last
    out += (prev === undefined ? '' : ',') + item(members, j);
    prev = key;
  }
  return out + '}';
}

/** `a[i]` where the caller's loop keeps `i` in range: a miss is a bug here, thrown as one. */
function item<T>(a: readonly T[], i: number): T {
  const v = a[i];
  if (v === undefined) throw new Error(`digest: index ${i} out of range (length ${a.length})`);
  return v;
}

/** The index after a `"…"` at i with no escapes, control characters or surrogates inside; -1 otherwise. */
function plainStringEnd(t: string, i: number): number {
  if (t.charCodeAt(i) !== 34) return -1;
  for (i++; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92 || c < 32 || (c >= 0xd800 && c <= 0xdfff)) return -1;
  }
  return -1;
}

/** The index after an integer of 1-15 digits at i (optional minus, no leading zero, not -0); -1 otherwise. */
function integerEnd(t: string, i: number): number {
  const neg = t.charCodeAt(i) === 45;
  const s = neg ? i + 1 : i;
  let j = s;
  while (j < t.length && t.charCodeAt(j) >= 48 && t.charCodeAt(j) <= 57) j++;
  const digits = j - s;
  if (
    digits === 0 ||
    digits > 15 ||
    (digits > 1 && t.charCodeAt(s) === 48) ||
    (neg && digits === 1 && t.charCodeAt(s) === 48)
  )
    return -1;
  const c = t.charCodeAt(j);
  if (c === 46 || c === 101 || c === 69) return -1; // a fraction or exponent
  return j;
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
  for (const k in v) {
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

/** `lanes[k] += sign * h[k]` for the four lanes of two 4-lane arrays (Uint32Array stores wrap mod 2^32). */
function addLanes(lanes: Uint32Array, h: Uint32Array, sign: 1 | -1): void {
  for (let k = 0; k < 4; k++) lanes[k] = (lanes[k] ?? 0) + sign * (h[k] ?? 0);
}

/** An accumulating, order-independent digest. */
export class Digest {
  readonly lanes = new Uint32Array(4);
  count = 0;

  addText(text: string): void {
    hash128(text, scratch);
    addLanes(this.lanes, scratch, 1);
    this.count++;
  }

  /** Undo addText (for incremental maintenance). */
  removeText(text: string): void {
    hash128(text, scratch);
    addLanes(this.lanes, scratch, -1);
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
  constructor(
    readonly buckets: number,
    readonly strict = false,
  ) {
    this.parts = Array.from({ length: buckets }, () => new Digest());
  }
  add(e: Registration): void {
    this.part(e.namespace, e.key).add(e, this.strict);
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
    const meta = canonicalFlatObjectText(metaText) ?? canonicalParsedJson(JSON.parse(metaText));
    this.part(namespace, key).addText(this.nsJson + JSON.stringify(key) + ',' + pid + ',' + this.nodeJson + meta);
  }
  private part(namespace: string, key: string): Digest {
    const b = bucketOf(namespace, key, this.buckets);
    const d = this.parts[b];
    if (d === undefined) throw new Error(`bucket ${b} of ${this.buckets} out of range`);
    return d;
  }
  result(): BucketDigests {
    return { buckets: this.buckets, digests: this.parts.map((d) => d.hex()), counts: this.parts.map((d) => d.count) };
  }
}

/**
 * Bucket digests re-cut to `buckets`, a divisor of `d.buckets`: entry h lands in h % d.buckets,
 * and (h % d.buckets) % buckets = h % buckets, so summing lanes is exactly a direct computation.
 */
export function foldDigests(d: BucketDigests, buckets: number): BucketDigests {
  if (buckets === d.buckets) return d;
  if (d.buckets % buckets !== 0) throw new Error(`cannot fold ${d.buckets} buckets into ${buckets}`);
  const parts = Array.from({ length: buckets }, () => new Digest());
  for (let i = 0; i < d.buckets; i++) {
    const p = parts[i % buckets];
    if (p === undefined) throw new Error(`cannot fold ${d.buckets} buckets into ${buckets}`);
    const hex = d.digests[i];
    const count = d.counts[i];
    if (hex === undefined || count === undefined)
      throw new Error(
        `malformed digests: ${d.buckets} buckets but ${d.digests.length} digests and ${d.counts.length} counts`,
      );
    const lanes = p.lanes;
    for (let l = 0; l < 4; l++) lanes[l] = (lanes[l] ?? 0) + parseInt(hex.slice(l * 8, l * 8 + 8), 16);
    p.count += count;
  }
  return { buckets, digests: parts.map((x) => x.hex()), counts: parts.map((x) => x.count) };
}
