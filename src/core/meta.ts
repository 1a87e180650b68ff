/**
 * Pure metadata helpers shared by the backends and the service (core layer: imports nothing but
 * the contract's types): `--where` matching and RFC 7386 merge patches.
 */
import type { Meta } from '../backends/contract.js';

/** Does `meta` match every `where` pair? A list value matches when one element equals the value. */
export function matchesWhere(meta: Meta, where: Array<[string, string]> | undefined): boolean {
  if (!where || where.length === 0) return true;
  for (const [field, want] of where) {
    // Own properties only: `__proto__`, `constructor`, … must not match through the prototype.
    const v = Object.hasOwn(meta, field) ? meta[field] : undefined;
    if (Array.isArray(v)) {
      if (!v.some((x) => scalarText(x) === want)) return false;
    } else if (scalarText(v) !== want) return false;
  }
  return true;
}

/** The text a scalar metadata value is compared by in `--where` (strings as is, others as JSON). */
export function scalarText(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
