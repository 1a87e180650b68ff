/**
 * What a command's shared core (src/cli/run/*.ts) sees of the command running it: the oclif
 * command class (src/cli/base.ts `io()`) and the cold-start fast path (src/cli/fast.ts) each lend
 * one, so both paths run the same code and answer the same way.
 */
import type { ProcessRegistry } from '../registry/service.js';
import type { Colors, OutputFormat, View } from './output.js';

export interface CommandIO {
  /** The registry the command works on (opened on first use, closed when the command ends). */
  registry(): Promise<ProcessRegistry>;
  /** The namespace asked for (-n), if any. */
  readonly ns: string | undefined;
  /** The result is the output (--json, -o json|yaml): `log` is then silent. */
  jsonEnabled(): boolean;
  /** -o/--output, when it names a form. */
  format(): OutputFormat | undefined;
  /** How tables print. */
  view(): View;
  /** One line to stdout (silent when the result is the output). */
  log(line: string): void;
  /** Colours for stdout. */
  colors(): Promise<Colors>;
}

/** A command's core: its arguments and flags as oclif parses them in, its JSON result out. */
export interface CoreCommand<A, F, R = unknown> {
  /** The command reads only: a store that does not exist is not created. */
  readOnly: boolean;
  /** When the command's own flags turn the JSON result off (`lookup --json --field pid` prints the field). */
  jsonOff?(flags: F): boolean;
  run(io: CommandIO, args: A, flags: F): Promise<R>;
}
