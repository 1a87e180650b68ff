/** The service's bulk register (ProcessRegistry.bulkRegister): validation per item, one replace rule, the backend's bulk path. */
import {
  asRegistryError,
  type BulkResult,
  type Meta,
  type RegisterOptions,
  type Registration,
  RegistryError,
} from '../backends/contract.js';
import type { ProcessRegistry, RegisterCallOptions } from './service.js';
import { notWritten, rolledBack } from './validate.js';

/** Register many entries; per-entry results in input order; `atomic`: all or nothing. `touched`: a write went through. */
export async function bulkRegister(
  reg: ProcessRegistry,
  items: Array<{ key: string; pid: number; meta?: Meta } & RegisterCallOptions>,
  opts: { atomic?: boolean },
  touched: ((namespace: string, key: string) => void) | null,
): Promise<BulkResult[]> {
  const backend = reg.backend;
  const results: BulkResult[] = new Array(items.length);
  const valid: Registration[] = [];
  const where: number[] = [];
  for (const [i, it] of items.entries()) {
    try {
      const e = reg.makeEntry(it.key, it.pid, it.meta ?? {}, it);
      reg.assertRunning(e);
      valid.push(e);
      where.push(i);
    } catch (err) {
      results[i] = { ok: false, error: asRegistryError(err) };
    }
  }
  if (opts.atomic && valid.length !== items.length) {
    const error = notWritten();
    return items.map((_, i) => results[i] ?? { ok: false, error });
  }
  // Replace a holder only when it is dead or is the very process this batch registers.
  const batchEntry = batchIndex(valid);
  const rule: RegisterOptions = {
    replaceIf: (h) => {
      const e = batchEntry(h);
      return (!!e && e.pid === h.pid && e.node === h.node) || !reg.isAlive(h);
    },
  };
  let out: BulkResult[];
  if (backend.bulkRegister) {
    out = await backend.bulkRegister(valid, { ...rule, atomic: opts.atomic });
    // An atomic batch that failed anywhere was rolled back: no item was written (item 11).
    if (opts.atomic && out.some((r) => !r.ok)) out = rolledBack(out);
  } else {
    out = [];
    for (const e of valid) {
      try {
        out.push(await backend.register(e, rule));
      } catch (err) {
        out.push({ ok: false, error: asRegistryError(err) });
      }
    }
  }
  out.forEach((r, j) => {
    const i = where[j];
    const e = valid[j];
    if (i === undefined || e === undefined)
      throw new RegistryError(
        'INTERNAL',
        `the ${backend.name} backend answered ${out.length} results for ${valid.length} entries`,
      );
    results[i] = r;
    if (touched && r.ok) touched(e.namespace, e.key);
  });
  return results;
}

/**
 * The batch entry a holder would be replaced by (the last one for its namespace and key), found
 * through a map built on first use; keyed by bare key when the batch is all one namespace.
 */
function batchIndex(valid: Registration[]): (h: Registration) => Registration | undefined {
  let byKey: Map<string, Registration> | undefined;
  let oneNs: string | null = null;
  return (h) => {
    if (!byKey) {
      byKey = new Map();
      oneNs = valid[0]?.namespace ?? null;
      for (const e of valid) if (e.namespace !== oneNs) oneNs = null;
      for (const e of valid) byKey.set(oneNs !== null ? e.key : `${e.namespace}\u0000${e.key}`, e);
    }
    if (oneNs !== null) return h.namespace === oneNs ? byKey.get(h.key) : undefined;
    return byKey.get(`${h.namespace}\u0000${h.key}`);
  };
}
