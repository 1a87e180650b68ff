/** The lookup command's core, shared by the oclif command and bin/run.js's cold-start fast path. */
import { NotFoundError, type Registration } from '../backends/contract.js';
import type { ProcessRegistry } from '../registry/service.js';

export async function lookupOrThrow(reg: ProcessRegistry, key: string, namespace?: string): Promise<Registration> {
  const e = await reg.lookup(key, { namespace });
  if (!e) throw new NotFoundError(namespace ?? reg.namespace, key);
  return e;
}
