/**
 * Tab completion and inline argument hints for the REPL: command names (topics as separate
 * words, `meta get`), flags, flag values (options, namespaces, profiles, backend schemes),
 * namespaces and keys (fetched from the backend by prefix), dump files.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ProcessRegistry } from '../registry/service.js';
import { splitPartial, quoteWord } from './parse.js';

/** What completion needs to know of a command (read from the oclif manifest). */
export interface CommandInfo {
  /** Words as typed: `meta get`. */
  words: string[];
  args: Array<{ name: string; required?: boolean }>;
  flags: Array<{
    name: string;
    char?: string;
    type: 'option' | 'boolean';
    options?: readonly string[];
    helpValue?: string | string[];
  }>;
  summary?: string;
}

/** What completion asks of the live session. */
export interface CompletionSource {
  commands: CommandInfo[];
  builtins: Record<string, { usage: string; values?: () => Promise<string[]> | string[] }>;
  namespaces(): Promise<string[]>;
  /** Keys starting with `prefix` in namespace `ns` (bounded). */
  keys(prefix: string, ns: string | undefined): Promise<string[]>;
  profiles(): string[];
  schemes(): string[];
}

/** Positional arguments that name a registered key. */
const KEY_ARGS = new Set(['key', 'name']);
const MAX_CANDIDATES = 200;

export interface Parsed {
  cmd?: CommandInfo;
  builtin?: string;
  /** Words after the command name, finished ones only. */
  rest: string[];
  /** The word being typed (unquoted), '' at a fresh word. */
  current: string;
  /** The raw text of the word being typed, as readline must replace it. */
  raw: string;
  /** The line names more words than a command or builtin (an unknown first word). */
  unknown: boolean;
  /** Still typing the command name: the finished words so far (a topic like `meta`). */
  naming?: string[];
}

export function parseForCompletion(line: string, src: CompletionSource): Parsed {
  const s = splitPartial(line);
  const fresh = s.trailingSpace || s.words.length === 0;
  const done = fresh ? s.words : s.words.slice(0, -1);
  const current = fresh ? '' : (s.words.at(-1) ?? '');
  const raw = fresh ? '' : line.slice(s.lastStart);
  const [first] = done;
  if (first === undefined) return { rest: [], current, raw, unknown: false, naming: [] };
  if (Object.hasOwn(src.builtins, first)) return { builtin: first, rest: done.slice(1), current, raw, unknown: false };
  let best: CommandInfo | undefined;
  for (const c of src.commands) {
    if (
      c.words.length <= done.length &&
      c.words.every((w, i) => done[i] === w) &&
      (!best || c.words.length > best.words.length)
    )
      best = c;
  }
  if (best) return { cmd: best, rest: done.slice(best.words.length), current, raw, unknown: false };
  const topic = src.commands.some((c) => c.words.length > done.length && done.every((w, i) => c.words[i] === w));
  return topic ? { rest: [], current, raw, unknown: false, naming: done } : { rest: [], current, raw, unknown: true };
}

/** Value flags (`--name`/`-c` taking a value) of a command. */
function findFlag(cmd: CommandInfo, word: string) {
  if (word.startsWith('--')) return cmd.flags.find((f) => `--${f.name}` === word);
  if (/^-[A-Za-z]$/.test(word)) return cmd.flags.find((f) => f.char === word.charAt(1));
  return undefined;
}

/** Positional words already given after the command (flags and their values skipped). */
function positionals(cmd: CommandInfo, rest: string[]): string[] {
  const out: string[] = [];
  const words = rest.values(); // one iterator: next() inside the loop skips a flag's value
  for (const w of words) {
    if (w === '--') return [...out, ...words];
    if (w.startsWith('-') && w.length > 1) {
      const f = findFlag(cmd, w);
      if (f?.type === 'option' && !w.includes('=')) words.next();
      continue;
    }
    out.push(w);
  }
  return out;
}

/** `-n NS` / `--namespace NS` / `--namespace=NS` typed on the line. */
function namespaceOnLine(rest: string[]): string | undefined {
  for (const [i, w] of rest.entries()) {
    const next = rest[i + 1];
    if ((w === '-n' || w === '--namespace') && next !== undefined) return next;
    if (w.startsWith('--namespace=')) return w.slice('--namespace='.length);
  }
  return undefined;
}

function files(prefix: string): string[] {
  const dir = prefix.endsWith('/') ? prefix : dirname(prefix);
  const base = prefix.endsWith('/') ? '' : basename(prefix);
  const shown = prefix.endsWith('/') ? prefix : dir === '.' && !prefix.startsWith('./') ? '' : `${dir}/`;
  try {
    return readdirSync(dir || '.')
      .filter((n) => n.startsWith(base) && (base.startsWith('.') || !n.startsWith('.')))
      .map((n) => {
        let isDir = false;
        try {
          isDir = statSync(join(dir || '.', n)).isDirectory();
        } catch {
          // a dangling link
        }
        return `${shown}${n}${isDir ? '/' : ''}`;
      });
  } catch {
    return [];
  }
}

/** The first words of every command and builtin. */
function commandWords(src: CompletionSource, typed: string[]): string[] {
  const out = new Set<string>();
  if (typed.length === 0) for (const b of Object.keys(src.builtins)) out.add(b);
  for (const c of src.commands) {
    const next = c.words[typed.length];
    if (next !== undefined && typed.every((w, i) => c.words[i] === w)) out.add(next);
  }
  return [...out].sort();
}

/** The values a flag takes, when they can be listed. */
async function flagValues(flag: CommandInfo['flags'][number], src: CompletionSource): Promise<string[]> {
  if (flag.options) return [...flag.options];
  if (flag.name === 'namespace') return src.namespaces();
  if (flag.name === 'profile') return src.profiles();
  if (flag.name === 'backend') return src.schemes();
  return [];
}

/**
 * Candidates for readline's completer: `[completions, rawWordBeingReplaced]`. A single candidate
 * gets a trailing space (directories and backend schemes do not), so TAB finishes the word.
 */
export async function complete(
  line: string,
  src: CompletionSource,
  opts: { raw?: boolean } = {},
): Promise<[string[], string]> {
  const p = parseForCompletion(line, src);
  let words: string[] = [];
  let asIs = false; // candidates are already shell-safe (flags, commands)
  if (p.naming) {
    words = commandWords(src, p.naming);
    asIs = true;
  } else if (p.builtin) {
    const b = src.builtins[p.builtin];
    if (p.rest.length === 0 && b?.values) words = await b.values();
  } else if (p.cmd) {
    const cmd = p.cmd;
    const prev = p.rest[p.rest.length - 1];
    const prevFlag = prev !== undefined ? findFlag(cmd, prev) : undefined;
    if (prevFlag?.type === 'option') {
      words = await flagValues(prevFlag, src);
    } else if (p.current.startsWith('-')) {
      words = [...cmd.flags.map((f) => `--${f.name}`), '--help'];
      asIs = true;
    } else {
      const arg = cmd.args[positionals(cmd, p.rest).length];
      if (arg && KEY_ARGS.has(arg.name)) words = await src.keys(p.current, namespaceOnLine(p.rest));
      else if (arg?.name === 'file') words = files(p.current);
      else if (arg?.name === 'profile') words = src.profiles();
    }
  }
  const hits = words.filter((w) => w.startsWith(p.current)).slice(0, MAX_CANDIDATES);
  if (opts.raw) return [hits, p.current];
  const shown = asIs ? hits : hits.map((w) => requote(w, p.raw));
  const [only] = shown;
  if (shown.length === 1 && only !== undefined && !/[/:]$/.test(only)) shown[0] = `${only} `;
  return [shown, p.raw];
}

/** Quote a candidate the way the user started the word (`'we` → `'web 2'`), else only when needed. */
function requote(w: string, raw: string): string {
  if (raw.startsWith("'")) return `'${w.replace(/'/g, `'\\''`)}'`;
  if (raw.startsWith('"')) return `"${w.replace(/["\\$`]/g, (c) => `\\${c}`)}"`;
  return quoteWord(w);
}

/** The inline hint shown after the cursor: what the command still expects. */
export function hint(line: string, src: CompletionSource): string {
  const p = parseForCompletion(line, src);
  if (p.current !== '' || p.unknown) return '';
  if (p.naming) {
    if (p.naming.length === 0) return '';
    return commandWords(src, p.naming).join('|');
  }
  if (p.builtin) return p.rest.length === 0 ? (src.builtins[p.builtin]?.usage ?? '') : '';
  const cmd = p.cmd!;
  const prev = p.rest[p.rest.length - 1];
  const prevFlag = prev !== undefined ? findFlag(cmd, prev) : undefined;
  if (prevFlag?.type === 'option') {
    if (prevFlag.options) return prevFlag.options.join('|');
    const hv = prevFlag.helpValue;
    return (Array.isArray(hv) ? hv.join(' ') : hv) ?? prevFlag.name.toUpperCase();
  }
  const given = positionals(cmd, p.rest).length;
  const left = cmd.args.slice(given).map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`));
  if (left.length === 0) return p.rest.length === 0 && cmd.flags.length > 0 ? '[FLAGS]' : '';
  return left.join(' ');
}

/** Build CommandInfo from oclif's loaded commands (ids use ':' between topic and command). */
export function commandInfos(
  commands: Array<{
    id: string;
    hidden?: boolean;
    summary?: string;
    description?: string;
    args?: Record<string, { name: string; required?: boolean }>;
    flags?: Record<
      string,
      {
        name: string;
        char?: string;
        type: string;
        options?: readonly string[];
        helpValue?: string | string[];
        hidden?: boolean;
      }
    >;
  }>,
): CommandInfo[] {
  return commands
    .filter((c) => !c.hidden && c.id !== 'repl')
    .map((c) => ({
      words: c.id.split(':'),
      summary: c.summary ?? c.description?.split('\n')[0],
      args: Object.values(c.args ?? {}).map((a) => ({ name: a.name, required: a.required })),
      flags: Object.values(c.flags ?? {})
        .filter((f) => !f.hidden)
        .map((f) => ({
          name: f.name,
          char: f.char,
          type: f.type === 'boolean' ? ('boolean' as const) : ('option' as const),
          options: f.options,
          helpValue: f.helpValue,
        })),
    }))
    .sort((a, b) => a.words.join(' ').localeCompare(b.words.join(' ')));
}

/** Keys starting with `prefix`, in key order, at most `max` (for completion). */
export async function keysByPrefix(
  reg: ProcessRegistry,
  prefix: string,
  namespace: string | undefined,
  max = 100,
): Promise<string[]> {
  const out: string[] = [];
  // The largest string below every key that starts with `prefix`: prefix minus its last character, plus U+FFFF after it lowered.
  const after: string | undefined = prefix
    ? `${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) - 1)}\uffff`
    : undefined;
  try {
    for await (const page of reg.pages({ namespace, after, pageSize: max, limit: 5 * max })) {
      for (const e of page.items) {
        if (e.key.startsWith(prefix)) out.push(e.key);
        else if (e.key > prefix) return out;
      }
      if (out.length >= max) break;
    }
  } catch {
    // completion never fails the prompt
  }
  return out.slice(0, max);
}
