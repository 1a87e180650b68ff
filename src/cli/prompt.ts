/**
 * Asking a human before a destructive step (design §4): an @inquirer/prompts confirmation only
 * when stdin is a terminal and `CI` is not set; otherwise the step needs `--yes`. Used by
 * `restore --mode replace` and meant for every other decision of the kind (migration cut-over).
 * Works the same inside the REPL, which hands the terminal to the running command.
 */
import { InvalidInputError } from '../backends/contract.js';

/** Prompts only with a TTY on stdin, outside CI. */
export function canPrompt(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!process.stdin.isTTY && !env.CI;
}

export interface ConfirmOptions {
  /** The question, e.g. "Replace everything in sqlite:x.db with d.ndjson?". */
  message: string;
  /** `--yes` given: do not ask. */
  yes?: boolean;
  /** Why --yes is needed when nobody can be asked: "--mode replace removes every registration not in the dump". */
  consequence: string;
  /** What is called off on "no": "restore". */
  action: string;
  /** stdin carries data (e.g. `restore -`): nobody can answer on it. */
  stdinInUse?: boolean;
  /** Aborts the question (the REPL's Ctrl-C). */
  signal?: AbortSignal;
}

/** Resolve when confirmed; throw InvalidInputError (exit 2, nothing changed) otherwise. */
export async function confirmOrRefuse(o: ConfirmOptions): Promise<void> {
  if (o.yes) return;
  if (!canPrompt() || o.stdinInUse) throw new InvalidInputError(`${o.consequence}: pass --yes to confirm`);
  const { confirm } = await import('@inquirer/prompts');
  let ok = false;
  try {
    ok = await confirm({ message: o.message, default: false }, o.signal ? { signal: o.signal } : undefined);
  } catch (err) {
    // Ctrl-C / Ctrl-D in the prompt, or the REPL's cancel: a "no".
    const name = (err as Error)?.name;
    if (name !== 'ExitPromptError' && name !== 'AbortPromptError') throw err;
  }
  if (!ok) throw new InvalidInputError(`${o.action} cancelled: nothing was changed`);
}
