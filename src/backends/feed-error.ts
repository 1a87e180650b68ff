/** The one error of a change feed asked for history it no longer keeps (memory, SQLite; a node answers it with 410). */
import { type ErrorCode, exitCodes, RegistryError } from './contract.js';

/** A watch from `since`, older than the oldest revision kept: list again and watch from now. */
export function compactedError(since: number, oldest: number): RegistryError {
  // `COMPACTED` where the contract has it (issue 14 §6), else the node's exit code today (1).
  const code = ('COMPACTED' in exitCodes ? 'COMPACTED' : 'INTERNAL') as ErrorCode;
  return new RegistryError(
    code,
    `revision ${since} is compacted (oldest kept: ${oldest}): list again and watch from the current revision`,
    { details: { compacted: true, since, oldest } },
  );
}
