/**
 * The light runtime of the command classes (issue 15 §1, docs/cold-start.md): the part of
 * `@oclif/core` the commands use — `Command` (init, parse, run, catch, finally, log, logJson,
 * jsonEnabled, error, exit), `Flags.string/boolean/integer/option`, `Args.string`,
 * `Errors.CLIError/ExitError` — written to behave as @oclif/core 4 does on every command line it
 * accepts. The build (scripts/build-lite.ts) bundles the command classes with `@oclif/core`
 * aliased to this module, so `registry list` runs the same class as oclif would without loading
 * oclif (≈ 140 ms). What it cannot do exactly as oclif does, src/cli/lite/run.ts declines before
 * any side effect, and oclif runs the command in full.
 *
 * It is never imported by the TypeScript sources: only the bundle sees it, in place of @oclif/core.
 */
import { format, inspect } from 'node:util';
import { type ArgDef, type FlagDef, parseLite, type ParseInput } from './parse.js';

export type { ArgDef, FlagDef } from './parse.js';

/** As @oclif/core's command module: a closed stdout (`registry list | head`) is not an error (once per process). */
const g = globalThis as { __procregEpipe?: boolean };
if (!g.__procregEpipe) {
  g.__procregEpipe = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err?.code === 'EPIPE') return;
    throw err;
  });
}

// ---- Errors ---------------------------------------------------------------------------------

/** @oclif/core's CLIError: a message and `oclif.exit` (default 2, as oclif's). */
export class CLIError extends Error {
  code: string | undefined;
  oclif: { exit?: number } = {};
  skipOclifErrorHandling: boolean | undefined;
  suggestions: string[] | undefined;
  constructor(error: string | Error, options: { exit?: number | false; code?: string; suggestions?: string[] } = {}) {
    super(error instanceof Error ? error.message : error);
    if (options.exit !== false) this.oclif.exit = options.exit ?? 2;
    this.code = options.code;
    this.suggestions = options.suggestions;
  }
}

/** @oclif/core's ExitError (`this.exit(code)`). */
export class ExitError extends CLIError {
  override code = 'EEXIT';
  constructor(exitCode = 1) {
    super(`EEXIT: ${exitCode}`, { exit: exitCode });
  }
}

function error(input: string | Error, options: { exit?: number | false; code?: string } = {}): never {
  throw new CLIError(input, options);
}

function exit(code = 0): never {
  throw new ExitError(code);
}

export const Errors = { CLIError, ExitError, error, exit };

// ---- Flags and args -------------------------------------------------------------------------

type FlagOpts = Partial<FlagDef> & Record<string, unknown>;

/** As @oclif/core's `Flags.custom`: an option flag whose value goes through `parse`. */
function custom(defaults: FlagOpts = {}) {
  return (options: FlagOpts = {}): FlagDef => ({
    parse: async (input: unknown) => input,
    ...defaults,
    ...options,
    multiple: Boolean(options.multiple === undefined ? (defaults.multiple ?? false) : options.multiple),
    type: 'option',
    lite: options.parse ? undefined : defaults.lite,
  });
}

function boolean(options: FlagOpts = {}): FlagDef {
  return { parse: async (b: unknown) => b, ...options, allowNo: Boolean(options.allowNo), type: 'boolean' };
}

const integer = custom({
  lite: 'integer',
  // @oclif/core's Flags.integer, word for word (a failure declines: oclif reports it).
  async parse(input: unknown, _ctx: unknown, opts: FlagDef) {
    const s = String(input);
    if (!/^-?\d+$/.test(s)) throw new CLIError(`Expected an integer but received: ${s}`);
    const num = Number.parseInt(s, 10);
    if (opts.min !== undefined && num < opts.min)
      throw new CLIError(`Expected an integer greater than or equal to ${opts.min} but received: ${s}`);
    if (opts.max !== undefined && num > opts.max)
      throw new CLIError(`Expected an integer less than or equal to ${opts.max} but received: ${s}`);
    return num;
  },
});

/** As @oclif/core's `Flags.option({options, …})()`. */
function option(defaults: FlagOpts) {
  return (options: FlagOpts = {}): FlagDef => ({
    parse: async (input: unknown) => input,
    ...defaults,
    ...options,
    multiple: Boolean(options.multiple === undefined ? defaults.multiple : options.multiple),
    type: 'option',
  });
}

export const Flags = { boolean, custom, integer, option, string: custom() };

function stringArg(options: Partial<ArgDef> & Record<string, unknown> = {}): ArgDef {
  return { parse: async (i: unknown) => i, ...options, type: 'option' };
}

export const Args = { string: stringArg };

/** @oclif/core's aggregateFlags: the command's flags over the base flags, `--json` first. */
export function aggregateFlags(
  flags: Record<string, FlagDef> | undefined,
  baseFlags: Record<string, FlagDef> | undefined,
  enableJsonFlag: boolean | undefined,
): Record<string, FlagDef> {
  const combined = { ...baseFlags, ...flags };
  return enableJsonFlag ? { json: JSON_FLAG, ...combined } : combined;
}

const JSON_FLAG = boolean({ description: 'Format output as json.', helpGroup: 'GLOBAL' });

// ---- Command --------------------------------------------------------------------------------

/** What the light runtime has of oclif's Config (commands that need more are declined). */
export interface LiteConfig {
  bin: string;
  scopedEnvVar(k: string): string | undefined;
}

/** The static side of a command class, as the runner reads it. */
export interface CommandClass {
  new (argv: string[], config: LiteConfig): Command;
  id?: string;
  flags?: Record<string, FlagDef>;
  baseFlags?: Record<string, FlagDef>;
  args?: Record<string, ArgDef>;
  strict?: boolean;
  enableJsonFlag?: boolean;
  state?: string;
  deprecateAliases?: boolean;
  aliases?: string[];
  hiddenAliases?: string[];
}

/** @oclif/core's Command, as far as the commands use it. */
export abstract class Command {
  static id: string | undefined;
  static aliases: string[] = [];
  static hiddenAliases: string[] = [];
  static args: Record<string, ArgDef> = {};
  static baseFlags: Record<string, FlagDef> | undefined;
  static flags: Record<string, FlagDef> | undefined;
  static enableJsonFlag = false;
  static strict = true;
  static summary: string | undefined;
  static description: string | undefined;
  static examples: unknown;
  static hidden: boolean | undefined;
  static state: string | undefined;
  static deprecateAliases: boolean | undefined;

  id: string | undefined;
  parsed = false;

  constructor(
    public argv: string[],
    public config: LiteConfig,
  ) {
    this.id = this.ctor.id;
  }

  get ctor(): typeof Command {
    return this.constructor as typeof Command;
  }

  abstract run(): Promise<unknown>;

  /** oclif's Command._run, step for step. */
  async _run(): Promise<unknown> {
    let err: Error | undefined;
    let result: unknown;
    try {
      delete process.env.REGISTRY_REDIRECTED;
      await this.init();
      result = await this.run();
    } catch (error) {
      err = error as Error;
      await this.catch(err);
    } finally {
      await this.finally(err);
    }
    if (result && this.jsonEnabled()) this.logJson(this.toSuccessJson(result));
    return result;
  }

  async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    process.exitCode = process.exitCode ?? err.exitCode ?? 1;
    if (this.jsonEnabled()) this.logJson(this.toErrorJson(err));
    else throw err;
    return undefined;
  }

  error(input: string | Error, options: { exit?: number | false; code?: string } = {}): never {
    return error(input, options);
  }

  exit(code = 0): never {
    return exit(code);
  }

  async finally(_err: Error | undefined): Promise<unknown> {
    return undefined;
  }

  async init(): Promise<void> {}

  jsonEnabled(): boolean {
    if (!this.ctor?.enableJsonFlag) return false;
    if (this.config.scopedEnvVar('CONTENT_TYPE')?.toLowerCase() === 'json') return true;
    const passThroughIndex = this.argv.indexOf('--');
    const jsonIndex = this.argv.indexOf('--json');
    return passThroughIndex === -1 ? jsonIndex !== -1 : jsonIndex !== -1 && jsonIndex < passThroughIndex;
  }

  log(message: unknown = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) stdout(typeof message === 'string' ? message : inspect(message), ...args);
  }

  logToStderr(message: unknown = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) console.error(format(typeof message === 'string' ? message : inspect(message), ...args));
  }

  logJson(json: unknown): void {
    // oclif's ux.colorizeJson without a theme: its circular-safe JSON, two-space indented.
    console.log(safeStringify(typeof json === 'string' ? JSON.parse(json) : json));
  }

  warn(input: string | Error): string | Error {
    if (!this.jsonEnabled()) throw new Error('the light runtime does not print warnings'); // never used
    return input;
  }

  async parse(options?: Partial<ParseInput> & { baseFlags?: Record<string, FlagDef>; enableJsonFlag?: boolean }) {
    const o = options ?? this.ctor;
    const input: ParseInput = {
      flags: aggregateFlags(o.flags, options?.baseFlags ?? this.ctor.baseFlags, options?.enableJsonFlag),
      args: o.args ?? {},
      strict: o.strict ?? true,
    };
    const r = await parseLite(input, this.argv);
    // The runner parsed this command line with the same definitions before running it.
    if (!r) throw new Error(`the light runtime cannot parse: ${this.argv.join(' ')}`);
    this.parsed = true;
    return { ...r, metadata: { flags: {} }, nonExistentFlags: [], raw: [] };
  }

  toErrorJson(err: unknown): unknown {
    if (err instanceof Error) return { error: { ...err, message: err.message, name: err.name } };
    return { error: err };
  }

  toSuccessJson(result: unknown): unknown {
    return result;
  }
}

/** oclif's ux.stdout. */
function stdout(str: string, ...args: unknown[]): void {
  if (!str && args) console.log(format(...args));
  else if (!str) console.log();
  else console.log(format(str, ...args));
}

/** oclif's colorize-json stringify (after json-stringify-safe), two-space indented. */
function safeStringify(value: unknown): string {
  const stack: unknown[] = [];
  const keys: string[] = [];
  const cycle = (value: unknown) =>
    stack[0] === value ? '[Circular ~]' : `[Circular ~.${keys.slice(0, stack.indexOf(value)).join('.')}]`;
  return JSON.stringify(
    value,
    function (this: unknown, key: string, v: unknown) {
      if (stack.length > 0) {
        const thisPos = stack.indexOf(this);
        if (~thisPos) stack.splice(thisPos + 1);
        else stack.push(this);
        if (~thisPos) keys.splice(thisPos, Number.POSITIVE_INFINITY, key);
        else keys.push(key);
        if (stack.includes(v)) v = cycle(v);
      } else stack.push(v);
      return v;
    },
    2,
  );
}
