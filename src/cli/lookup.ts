/** The lookup command's core, shared by the oclif command and bin/run.js's cold-start fast path. */
import { NotFoundError, RegistryError, type Registration } from '../backends/contract.js';
import type { ProcessRegistry } from '../registry/service.js';

export async function lookupOrThrow(reg: ProcessRegistry, key: string, namespace?: string): Promise<Registration> {
  const e = await reg.lookup(key, { namespace });
  if (!e) throw new NotFoundError(namespace ?? reg.namespace, key);
  return e;
}

/**
 * One field of a registration (a top-level field such as pid or node, else a metadata field), or
 * exit 3 when it is absent: a script's `kill -HUP "$(registry lookup web-1 --field pid)"` must fail,
 * not run `kill -HUP null` (issue 12 item 6). A field present with the value null is printed as null.
 */
export function fieldOrThrow(e: Registration, field: string): unknown {
  const top = e as unknown as Record<string, unknown>;
  if (Object.prototype.hasOwnProperty.call(top, field) && field !== 'meta') {
    if (top[field] !== undefined) return top[field];
  } else if (Object.prototype.hasOwnProperty.call(e.meta, field)) return e.meta[field];
  throw new RegistryError(
    'NOT_FOUND',
    `no field "${field}" in "${e.key}" (namespace "${e.namespace}"): run without the field to see what it holds`,
    { details: { namespace: e.namespace, key: e.key, field } },
  );
}

/** A metadata field of a registration, or exit 3 when absent (`meta get KEY FIELD`). */
export function metaFieldOrThrow(e: Registration, field: string): unknown {
  if (Object.prototype.hasOwnProperty.call(e.meta, field)) return e.meta[field];
  throw new RegistryError(
    'NOT_FOUND',
    `no metadata field "${field}" in "${e.key}" (namespace "${e.namespace}"): run \`registry meta get ${e.key}\` to see its fields`,
    { details: { namespace: e.namespace, key: e.key, field } },
  );
}
