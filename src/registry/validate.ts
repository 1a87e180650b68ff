/**
 * Input validation of design §1. Every failure is an InvalidInputError whose message says what was
 * wrong and what to do; nothing is written before validation passes.
 */
import { InvalidInputError, type Meta } from '../backends/contract.js';

// The pure pieces below everything moved to the core layer; re-exported for existing importers.
export { matchesWhere, mergePatch, scalarText } from '../core/meta.js';
export { compareKeys } from '../core/keys.js';
export { notWritten, rolledBack } from '../core/bulk.js';

export const NAMESPACE_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const MAX_KEY_BYTES = 512;
export const MAX_META_BYTES = 64 * 1024;
// C0 and C1 control characters and DEL.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
// Control characters or any surrogate (paired or not): what makes a key need a closer look.
const KEY_SUSPECT_RE = /[\u0000-\u001f\u007f-\u009f\ud800-\udfff]/;

// The last namespace and node name that passed (a batch usually repeats one of each); they start
// as valid strings so that undefined never matches.
let lastGoodNs = 'default';
let lastGoodNode = 'node';

export function validateNamespace(ns: unknown): string {
  if (ns === lastGoodNs) return lastGoodNs;
  if (typeof ns !== 'string' || !NAMESPACE_RE.test(ns)) {
    throw new InvalidInputError(
      `invalid namespace ${JSON.stringify(ns)}: use 1-64 characters of letters, digits, "_", ".", ":" or "-", starting with a letter or digit`,
    );
  }
  lastGoodNs = ns;
  return ns;
}

export function validateKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidInputError(`invalid key ${JSON.stringify(key)}: a key is a non-empty string`);
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes, so a short key needs no byte count.
  if (
    key.length * 3 > MAX_KEY_BYTES &&
    (key.length > MAX_KEY_BYTES || Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES)
  ) {
    throw new InvalidInputError(
      `invalid key: ${Buffer.byteLength(key, 'utf8')} bytes is more than ${MAX_KEY_BYTES}: use a shorter name`,
    );
  }
  // One scan decides the common case: no control character and no surrogate at all.
  if (!KEY_SUSPECT_RE.test(key)) return key;
  if (CONTROL_RE.test(key)) {
    throw new InvalidInputError(`invalid key ${JSON.stringify(key)}: control characters are not allowed in keys`);
  }
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(key)) {
    throw new InvalidInputError(`invalid key ${JSON.stringify(key)}: it is not valid UTF-8 (lone surrogate)`);
  }
  return key;
}

export function validatePid(pid: unknown): number {
  const n = typeof pid === 'string' && /^\d+$/.test(pid.trim()) ? Number(pid) : pid;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0 || n > 0x7fffffff) {
    throw new InvalidInputError(`invalid pid ${JSON.stringify(pid)}: a pid is an integer greater than 0`);
  }
  return n;
}

/** A timestamp (`registeredAt`, `updatedAt`): milliseconds since the epoch, an integer >= 0. */
export function validateTimestamp(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new InvalidInputError(
      `invalid ${what} ${jsonText(v)}: a timestamp is an integer number of milliseconds since the epoch, >= 0`,
    );
  return v;
}

/** A process start time (`pidStart`): an integer >= 0, or null when not recorded. */
export function validatePidStart(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new InvalidInputError(
      `invalid pidStart ${jsonText(v)}: a process start time is an integer >= 0, or null when unknown`,
    );
  return v;
}

function jsonText(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 80) ?? String(v);
  } catch {
    return String(v);
  }
}

export function validateNode(node: unknown): string {
  if (node === lastGoodNode) return lastGoodNode;
  if (typeof node !== 'string' || node.length === 0 || node.length > 255 || CONTROL_RE.test(node)) {
    throw new InvalidInputError(`invalid node ${JSON.stringify(node)}: a node name is 1-255 printable characters`);
  }
  lastGoodNode = node;
  return node;
}

/** Metadata must be a plain JSON object of at most 64 KiB serialized. Returns its serialization. */
export function validateMeta(meta: unknown): string {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    const kind = meta === null ? 'null' : Array.isArray(meta) ? 'an array' : typeof meta;
    throw new InvalidInputError(`invalid metadata: it must be a JSON object like {"role":"worker"}, not ${kind}`);
  }
  let text: string;
  try {
    text = JSON.stringify(meta);
  } catch (cause) {
    throw new InvalidInputError(`invalid metadata: it cannot be serialized as JSON (${(cause as Error).message})`, {
      cause,
    });
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_META_BYTES) {
    throw new InvalidInputError(
      `invalid metadata: ${bytes} bytes serialized is more than the ${MAX_META_BYTES}-byte limit: store less or a reference to it`,
    );
  }
  return text;
}

/**
 * The check of validateMeta (same errors) without building the serialization when it is not
 * needed: plain JSON data whose serialized size is bounded under the limit passes without being
 * stringified; anything else (large, deep, cyclic, non-plain values) goes through validateMeta.
 */
export function checkMeta(meta: unknown): void {
  if (meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
    let bound: number;
    try {
      bound = jsonBytesBound(meta, 0);
    } catch {
      bound = -1; // a throwing getter and the like: let validateMeta report it
    }
    if (bound >= 0 && bound <= MAX_META_BYTES) return;
  }
  validateMeta(meta);
}

/** Parse a JSON text that must be a metadata object (for `--meta-json` and files). */
export function parseMetaJson(text: string, what = 'metadata'): Meta {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new InvalidInputError(
      `invalid ${what}: not valid JSON (${(cause as Error).message}); pass an object like '{"role":"worker"}'`,
      { cause },
    );
  }
  validateMeta(v);
  return v as Meta;
}

/**
 * `--meta k=v` pairs into an object. Values that parse as JSON scalars/arrays/objects are kept
 * typed (`priority=3` → 3, `tags=["a","b"]` → array); anything else is a string.
 */
export function parseMetaPairs(pairs: string[]): Meta {
  const out: Meta = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new InvalidInputError(`invalid --meta ${JSON.stringify(p)}: use field=value`);
    const field = p.slice(0, i);
    const raw = p.slice(i + 1);
    let value: unknown = raw;
    if (/^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null|\[.*\]|\{.*\})$/s.test(raw)) {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    out[field] = value;
  }
  return out;
}

/** `--where field=value` pairs. */
export function parseWhere(pairs: string[]): Array<[string, string]> {
  return pairs.map((p) => {
    const i = p.indexOf('=');
    if (i <= 0)
      throw new InvalidInputError(`invalid --where ${JSON.stringify(p)}: use field=value, e.g. --where role=worker`);
    return [p.slice(0, i), p.slice(i + 1)] as [string, string];
  });
}

/** "500ms", "10s", "2m", "1h", or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new InvalidInputError(`invalid ${what} ${JSON.stringify(text)}: use e.g. 500ms, 10s, 2m or 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
}

// --- helpers -------------------------------------------------------------------------------------

/**
 * An upper bound of the UTF-8 bytes of JSON.stringify(v), or -1 when v is not plain JSON data
 * (strings, numbers, booleans, null, plain objects and arrays) within 32 levels, or the bound
 * passes the metadata limit. Per UTF-16 unit a string serializes to at most 6 bytes (a \u escape);
 * a number to at most 25 characters: a sign, "0.", five zeros and 17 significant digits, as in
 * -0.0000010000000019443982 (below 1e-6 JavaScript switches to exponent form, at most
 * -1.2345678901234567e-308: 24). Exported for its property test.
 */
const MAX_NUMBER_CHARS = 25;

export function jsonBytesBound(v: unknown, depth: number): number {
  switch (typeof v) {
    case 'string':
      return v.length * 6 + 2;
    case 'number':
      return MAX_NUMBER_CHARS;
    case 'boolean':
      return 5;
    case 'object': {
      if (v === null) return 4;
      if (depth >= 32) return -1;
      const proto = Object.getPrototypeOf(v);
      let n = 2;
      if (proto === Array.prototype) {
        const a = v as unknown[];
        for (let i = 0; i < a.length; i++) {
          const b = jsonBytesBound(a[i], depth + 1);
          if (b < 0) return -1;
          n += b + 1;
          if (n > MAX_META_BYTES) return -1;
        }
        return n;
      }
      if (proto !== Object.prototype && proto !== null) return -1;
      const o = v as Record<string, unknown>;
      // for-in also visits inherited enumerable keys, which only makes the bound larger.
      for (const k in o) {
        const b = jsonBytesBound(o[k], depth + 1);
        if (b < 0) return -1;
        n += k.length * 6 + 4 + b;
        if (n > MAX_META_BYTES) return -1;
      }
      return n;
    }
    default:
      return -1; // undefined, functions, symbols, bigint
  }
}
