/** Atomic bulk results shared by the backends and the service (core layer). */
import { type BulkResult, RegistryError } from '../backends/contract.js';

/**
 * The results of an atomic bulk that rolled back: nothing was written, so no item may say `ok`.
 * Failed items keep their own answer (holder or error); the others say why they were not written.
 */
export function rolledBack(results: BulkResult[]): BulkResult[] {
  const error = notWritten(); // one error for all: a batch of 700,000 made 700,000 stack traces (~1 GB)
  return results.map((r) => (r.ok ? { ok: false, error } : r));
}

/** The error of an atomic batch's entries that were not written because another one failed. */
export function notWritten(): RegistryError {
  return new RegistryError('CONFLICT', 'not written: another entry of the atomic batch failed');
}
