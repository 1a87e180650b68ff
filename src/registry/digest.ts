/**
 * Order-independent digests of registry state (design §5, `verify`).
 *
 * Equivalence compares (namespace, key, pid, node, meta) with metadata in canonical JSON (sorted
 * keys); timestamps only when strict. Each entry hashes to 256 bits (sha256); a digest is the
 * lane-wise sum mod 2^32 of eight 32-bit lanes over all entries, so it does not depend on order
 * and can be updated entry by entry in O(1) memory. Entries are spread over buckets by the hash of
 * (namespace, key) alone, so the same key lands in the same bucket on both sides and a mismatching
 * bucket can be narrowed down to its keys.
 */
import { createHash } from 'node:crypto';
import type { BucketDigests, Registration } from '../backends/contract.js';

/** JSON with object keys sorted at every depth. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v as object).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(x)}`);
  }
  return `{${parts.join(',')}}`;
}

/** The text an entry is compared by. */
export function entryIdentity(e: Registration, strict = false): string {
  const base = [e.namespace, e.key, e.pid, e.node, canonicalJson(e.meta)];
  if (strict) base.push(e.registeredAt, e.updatedAt);
  return JSON.stringify(base);
}

/** 32-bit bucket selector of a (namespace, key): FNV-1a over the UTF-16 code units. */
export function bucketOf(namespace: string, key: string, buckets: number): number {
  let h = 0x811c9dc5;
  const s = `${namespace}\u0000${key}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % buckets;
}

/** An accumulating, order-independent digest. */
export class Digest {
  readonly lanes = new Uint32Array(8);
  count = 0;

  addText(text: string): void {
    const h = createHash('sha256').update(text).digest();
    for (let i = 0; i < 8; i++) this.lanes[i] = (this.lanes[i] + h.readUInt32BE(i * 4)) >>> 0;
    this.count++;
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
  constructor(readonly buckets: number, readonly strict = false) {
    this.parts = Array.from({ length: buckets }, () => new Digest());
  }
  add(e: Registration): void {
    this.parts[bucketOf(e.namespace, e.key, this.buckets)].add(e, this.strict);
  }
  result(): BucketDigests {
    return { buckets: this.buckets, digests: this.parts.map((d) => d.hex()), counts: this.parts.map((d) => d.count) };
  }
}
