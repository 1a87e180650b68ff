/** The one error of a change feed asked for history it no longer keeps (memory, SQLite; a node answers it with 410). */
import { CompactedError } from './contract.js';

/** A watch from `since`, older than the oldest revision kept: list again and watch from now. */
export function compactedError(since: number, oldest: number): CompactedError {
  return new CompactedError(
    `revision ${since} is compacted (oldest kept: ${oldest}): list again and watch from the current revision`,
    { details: { since, oldest } },
  );
}
