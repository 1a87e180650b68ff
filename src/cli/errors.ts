/** Error reporting shared by every command and the fast path: one line (or JSON), the exit code. */
import { asRegistryError, RegistryError } from '../backends/contract.js';
import { colors } from './output.js';

/** oclif parse errors are usage errors (exit 2); RegistryErrors keep their code. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as Error & { oclif?: { exit?: number }; code?: string };
  const name = e?.constructor?.name ?? '';
  if (
    /Parse|Flag|Arg|Validation|NonExistent|RequiredArg|UnexpectedArgs|FailedFlagValidation/.test(name) ||
    e?.oclif?.exit === 2
  ) {
    // oclif puts the reason on the following lines ("Parsing --watch \n\tExpected an integer…"): keep it, on one line.
    const parts = String(e.message)
      .replace(/^Error: /, '')
      .split('\n')
      .map((l) => l.replace(/\s+/g, ' ').trim())
      .filter((l) => l && !/^See more help/i.test(l));
    const msg = parts.slice(0, 3).reduce((acc, l) => (acc ? `${acc}${acc.endsWith(':') ? ' ' : ': '}${l}` : l), '');
    return new RegistryError('INVALID_INPUT', `${msg} (see --help)`, { cause: err });
  }
  return asRegistryError(err);
}

/** Print an error the documented way and set process.exitCode; returns the exit code. */
export async function reportError(
  err: unknown,
  json: boolean,
  log: (s: string) => void = (s) => process.stdout.write(`${s}\n`),
): Promise<number> {
  const re = toRegistryError(err);
  process.exitCode = re.exitCode;
  if (json) {
    log(JSON.stringify({ error: { ...re.toJSON(), exitCode: re.exitCode } }, null, 2));
  } else {
    const c = await colors(process.stderr);
    process.stderr.write(`${c.bad('registry:')} ${re.message}\n`);
    if (process.env.DEBUG && re.code === 'INTERNAL')
      process.stderr.write(`${(re.cause as Error)?.stack ?? re.stack}\n`);
  }
  return re.exitCode;
}
