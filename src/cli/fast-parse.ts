/**
 * The fast path's argument parser (src/cli/fast.ts). It reads the same flag and argument
 * definitions oclif does — the commands' entries of oclif.manifest.json, copied at build time into
 * dist/fast-spec.json — and takes only the forms it reads exactly as oclif does:
 * `--flag value`, `--flag=value`, `-c value`, booleans, repeatable flags, `options` lists,
 * `exclusive` pairs and static defaults. Anything else (help, `--`, unknown or repeated flags,
 * combined short flags, a missing value, a value that looks like a flag, a flag with relations
 * this parser does not check) gives `undefined`, and oclif parses the command in full: the fast
 * path never answers differently, it only declines.
 */

/** A flag as oclif.manifest.json describes it. */
export interface FlagSpec {
  name: string;
  char?: string;
  type: 'option' | 'boolean';
  multiple?: boolean;
  options?: string[];
  allowNo?: boolean;
  exclusive?: string[];
  default?: unknown;
  required?: boolean;
  dependsOn?: string[];
  exactlyOne?: string[];
  relationships?: unknown[];
  combinable?: string[];
}

/** An argument as oclif.manifest.json describes it. */
export interface ArgSpec {
  name: string;
  required?: boolean;
  options?: string[];
  default?: unknown;
}

export interface CommandSpec {
  flags: Record<string, FlagSpec>;
  args: Record<string, ArgSpec>;
  strict?: boolean;
}

export type FastFlags = Record<string, string | string[] | boolean | undefined>;

/** The manifest fields the parser reads (the build keeps only these). */
export const SPEC_FLAG_FIELDS = [
  'name',
  'char',
  'type',
  'multiple',
  'options',
  'allowNo',
  'exclusive',
  'default',
  'required',
  'dependsOn',
  'exactlyOne',
  'relationships',
  'combinable',
] as const;

/** Parse `argv` (after the command id) as oclif would, or undefined when oclif must. */
export function parseFast(
  spec: CommandSpec,
  argv: readonly string[],
): { args: Record<string, string | undefined>; flags: FastFlags } | undefined {
  const flags: FastFlags = {};
  const positional: string[] = [];
  const byChar = new Map<string, FlagSpec>();
  for (const f of Object.values(spec.flags)) if (f.char) byChar.set(`-${f.char}`, f);
  // oclif gives every word after a repeatable flag to that flag (`--meta a=1 b=2`): such a word is oclif's.
  let greedy = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('-')) {
      if (greedy) return undefined;
      positional.push(a);
      continue;
    }
    let f: FlagSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      f = spec.flags[eq < 0 ? a.slice(2) : a.slice(2, eq)];
      if (eq >= 0) inline = a.slice(eq + 1);
    } else f = byChar.get(a); // `-c`, never `-cvalue` or `-abc`
    if (!f || f.dependsOn || f.exactlyOne || f.relationships || f.combinable) return undefined;
    if (f.type === 'boolean') {
      if (inline !== undefined || flags[f.name] !== undefined) return undefined;
      flags[f.name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('-'))) return undefined;
    if (f.options && !f.options.includes(value)) return undefined;
    greedy ||= !!f.multiple;
    if (f.multiple) flags[f.name] = [...((flags[f.name] as string[] | undefined) ?? []), value];
    else if (flags[f.name] !== undefined) return undefined;
    else flags[f.name] = value;
  }
  const given = new Set(Object.keys(flags));
  for (const f of Object.values(spec.flags)) {
    // Two exclusive flags, or one beside a defaulted one: oclif's rules decide.
    if (given.has(f.name) && f.exclusive?.some((x) => given.has(x) || spec.flags[x]?.default !== undefined))
      return undefined;
    if (given.has(f.name)) continue;
    if (f.required) return undefined;
    if (f.default !== undefined) {
      if (typeof f.default !== (f.type === 'boolean' ? 'boolean' : 'string')) return undefined;
      flags[f.name] = f.multiple ? [f.default as string] : (f.default as string | boolean);
    }
  }
  const defs = Object.values(spec.args);
  if (positional.length > defs.length) return undefined;
  const args: Record<string, string | undefined> = {};
  for (const [i, d] of defs.entries()) {
    const v = positional[i] ?? (typeof d.default === 'string' ? d.default : undefined);
    if (v === undefined && d.required) return undefined;
    if (v !== undefined && d.options && !d.options.includes(v)) return undefined;
    args[d.name] = v;
  }
  return { args, flags };
}
