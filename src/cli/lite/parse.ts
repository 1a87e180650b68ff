/**
 * The light runtime's argument parser (src/cli/lite/index.ts): the definitions are the command
 * classes' own (`Flags.*`, `Args.*` of the light runtime, which build them as @oclif/core does),
 * and it takes only the forms it reads exactly as @oclif/core 4's parser does:
 * `--flag value`, `--flag=value`, `-c value`, booleans, repeatable flags, `options` lists,
 * integers (with min/max), static defaults, `exclusive` pairs, a missing argument read from
 * stdin as oclif reads it. Anything else — help, `--`, unknown or repeated flags, combined short
 * flags (`-Ab`, `-pVALUE`), a missing value, a value that looks like a flag, a word after a
 * repeatable flag (oclif gives it to the flag), a value oclif would refuse, flags with relations
 * or env defaults — gives `undefined`, and oclif parses the command in full: the light path never
 * answers differently, it only declines.
 */
import { EOL } from 'node:os';

/** A flag as the light runtime's `Flags.*` build it (the fields @oclif/core gives it, as far as read here). */
export interface FlagDef {
  name?: string;
  char?: string;
  type: 'option' | 'boolean';
  multiple?: boolean;
  options?: readonly string[];
  allowNo?: boolean;
  exclusive?: string[];
  default?: unknown;
  required?: boolean;
  env?: string;
  min?: number;
  max?: number;
  parse: (input: any, ctx: unknown, opts: FlagDef) => Promise<unknown>;
  /** Set by Flags.integer: the parse is the light runtime's copy of oclif's. */
  lite?: 'integer';
  [other: string]: unknown;
}

/** An argument as `Args.*` build it. */
export interface ArgDef {
  name?: string;
  required?: boolean;
  options?: readonly string[];
  default?: unknown;
  ignoreStdin?: boolean;
  multiple?: boolean;
  parse: (input: any, ctx: unknown, opts: ArgDef) => Promise<unknown>;
  [other: string]: unknown;
}

export interface ParseInput {
  flags: Record<string, FlagDef>;
  args: Record<string, ArgDef>;
  strict: boolean;
}

export interface Parsed {
  args: Record<string, unknown>;
  flags: Record<string, unknown>;
  argv: unknown[];
}

/** Fields of a flag this parser does not implement: a flag that has one is oclif's to parse. */
const UNSUPPORTED = [
  'aliases',
  'charAliases',
  'dependsOn',
  'exactlyOne',
  'relationships',
  'combinable',
  'allowStdin',
  'delimiter',
  'deprecated',
  'deprecateAliases',
  'multipleNonGreedy',
  'defaultHelp',
];

/** Parse `argv` (after the command id) as @oclif/core would, or undefined when oclif must. */
export async function parseLite(input: ParseInput, argv: readonly string[]): Promise<Parsed | undefined> {
  const defs = input.flags;
  const byChar = new Map<string, [string, FlagDef]>();
  for (const [name, f] of Object.entries(defs)) {
    if (f.char) byChar.set(`-${f.char}`, [name, f]);
    if (f.exactlyOne || f.relationships) return undefined; // checked even when not given
  }
  const given = new Map<string, string[]>();
  const positional: string[] = [];
  // oclif gives every word after a repeatable flag to that flag (`--meta a=1 b=2`): such a word is oclif's.
  let greedy = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('-') || a === '-') {
      if (greedy || a === '-') return undefined;
      positional.push(a);
      continue;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 || defs[a.slice(2)] ? a.slice(2) : a.slice(2, eq);
      if (eq >= 0 && name !== a.slice(2)) inline = a.slice(eq + 1);
      if (!Object.hasOwn(defs, name)) return undefined;
    } else name = byChar.get(a)?.[0]; // `-c`, never `-cvalue` or `-abc`
    const f = name === undefined ? undefined : defs[name];
    if (!f || name === undefined || UNSUPPORTED.some((k) => f[k] !== undefined)) return undefined;
    if (given.has(name) && !(f.type === 'option' && f.multiple)) return undefined;
    if (f.type === 'boolean') {
      if (inline !== undefined) return undefined;
      given.set(name, []);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('-'))) return undefined;
    if (f.options && !f.options.includes(value)) return undefined;
    greedy ||= !!f.multiple;
    given.set(name, [...(given.get(name) ?? []), value]);
  }

  // Two exclusive flags, or one given beside a defaulted one (either side's list): oclif's rules decide.
  const present = (n: string) => given.has(n) || defs[n]?.default !== undefined;
  for (const [name, f] of Object.entries(defs))
    if (present(name) && f.exclusive?.some((x) => present(x) && (given.has(name) || given.has(x)))) return undefined;
  const flags: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(defs)) {
    const values = given.get(name);
    if (values) {
      try {
        if (f.type === 'boolean') flags[name] = await f.parse(true, {}, f);
        else if (f.multiple) flags[name] = await Promise.all(values.map((v) => f.parse(v, {}, f)));
        else flags[name] = await f.parse(values[0], {}, f);
      } catch {
        return undefined; // oclif reports it
      }
      continue;
    }
    if (f.required || (f.env && process.env[f.env])) return undefined;
    if (typeof f.default === 'function') return undefined;
    if (f.default !== undefined) flags[name] = f.default;
  }

  const argDefs = Object.entries(input.args);
  if (argDefs.some(([, d]) => d.multiple)) return undefined;
  if (input.strict && positional.length > argDefs.length) return undefined;
  const args: Record<string, unknown> = {};
  const out: unknown[] = [];
  const take = async (name: string, d: ArgDef, v: string) => {
    if (d.options && !d.options.includes(v)) throw new Error('not an option');
    const parsed = await d.parse(v, {}, d);
    out.push(parsed);
    args[name] = parsed;
  };
  let optionalSeen = false;
  try {
    for (const [i, [name, d]] of argDefs.entries()) {
      if (d.required && optionalSeen) return undefined; // oclif refuses the definitions
      optionalSeen ||= !d.required;
      const v = positional[i];
      if (v !== undefined) await take(name, d, v);
      else if (!d.ignoreStdin) {
        // oclif reads a missing argument from stdin when it is not a terminal (10 ms at most).
        const stdin = await readStdin();
        if (stdin) await take(name, d, stdin.trim());
      }
      if (args[name] === undefined && (d.default || d.default === false)) {
        if (typeof d.default === 'function') return undefined;
        out.push(d.default);
        args[name] = d.default;
      }
      if (d.required && args[name] === undefined) return undefined;
    }
  } catch {
    return undefined;
  }
  out.push(...positional.slice(argDefs.length));
  // oclif orders argv by where each word was on the command line.
  out.sort((a, b) => argv.indexOf(a as string) - argv.indexOf(b as string));
  return { args, flags, argv: out };
}

let stdinRead: Promise<string | null> | undefined;

/**
 * @oclif/core's readStdin: null on a terminal, else stdin's lines if it closes within 10 ms.
 * Read once per process; what it read is left where oclif looks for it (`globalThis.oclif`), so a
 * declined command's oclif run sees the same input.
 */
export function readStdin(): Promise<string | null> {
  return (stdinRead ??= (async () => {
    const { stdin, stdout } = process;
    if (stdin.isTTY) return null;
    const { createInterface } = await import('node:readline'); // not on the common path
    return new Promise<string | null>((resolve) => {
      const lines: string[] = [];
      const ac = new AbortController();
      const timeout = setTimeout(() => ac.abort(), 10);
      const rl = createInterface({ input: stdin, output: stdout, terminal: false });
      rl.on('line', (line) => lines.push(line));
      rl.once('close', () => {
        const result = lines.join(EOL);
        clearTimeout(timeout);
        const g = globalThis as { oclif?: Record<string, unknown> };
        g.oclif = { ...g.oclif, stdinCache: result };
        resolve(result);
      });
      ac.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timeout);
          rl.close();
          resolve(null);
        },
        { once: true },
      );
    });
  })());
}
