/**
 * Shell completion for bash, zsh and fish. The scripts `registry autocomplete SHELL` prints hand
 * the command line up to the cursor to the hidden `registry complete --line …`, which answers with
 * the REPL's own completer (src/repl/complete.ts): commands and topics, flags, flag values
 * (backend schemes, profiles, namespaces) and registered keys read from the backend the line
 * selects. Completion never creates a store (a missing file has no keys), never waits more than
 * its budget for a slow backend, and never prints an error.
 */
import { existsSync } from 'node:fs';
import { parseBackendUrl, schemes } from '../backends/open.js';
import { ProcessRegistry } from '../registry/service.js';
import { commandInfos, complete, keysByPrefix, type CompletionSource } from '../repl/complete.js';
import { quoteWord, splitPartial } from '../repl/parse.js';
import { GLOBAL_VALUE_FLAGS } from './argv.js';
import { findConfig, loadConfig, resolveBackend, type Selection } from './config.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** The script that wires `registry` completion into a shell. */
export function completionScript(shell: Shell, bin = 'registry'): string {
  switch (shell) {
    case 'bash':
      return `# ${bin} completion for bash. Load it now:   source <(${bin} autocomplete bash)
# or for every shell:                        ${bin} autocomplete bash >> ~/.bashrc
_${fn(bin)}_complete() {
  local out cur strip c
  out=$(${bin} complete --shell bash --line "\${COMP_LINE:0:COMP_POINT}" 2>/dev/null) || return 0
  local -a all
  mapfile -t all <<< "$out"
  COMPREPLY=()
  # The first line is the whole word being completed; bash replaces only its part after the last
  # COMP_WORDBREAKS character (":" "="), so candidates lose what comes before it.
  cur="\${COMP_WORDS[COMP_CWORD]}"
  strip="\${all[0]%"$cur"}"
  for c in "\${all[@]:1}"; do
    [[ -n $c ]] && COMPREPLY+=("\${c#"$strip"}")
  done
  if [[ \${#COMPREPLY[@]} -eq 1 && ( \${COMPREPLY[0]} == */ || \${COMPREPLY[0]} == *: ) ]]; then
    compopt -o nospace 2>/dev/null
  fi
  return 0
}
complete -F _${fn(bin)}_complete ${bin}
`;
    case 'zsh':
      return `#compdef ${bin}
# ${bin} completion for zsh. Load it now:   source <(${bin} autocomplete zsh)
# or for every shell:  ${bin} autocomplete zsh > "\${fpath[1]}/_${bin}"   (then compinit)
_${fn(bin)}() {
  local -a out finished open
  local c
  out=("\${(@f)$(${bin} complete --shell zsh --line "\${BUFFER[1,CURSOR]}" 2>/dev/null)}")
  (( \${#out} > 1 )) || return 1
  for c in "\${(@)out[2,-1]}"; do
    [[ -z $c ]] && continue
    if [[ $c == */ || $c == *: ]]; then open+=("$c"); else finished+=("$c"); fi
  done
  (( \${#finished} )) && compadd -U -Q -- "\${finished[@]}"
  (( \${#open} )) && compadd -U -Q -S '' -- "\${open[@]}"
  return 0
}
if (( $+functions[compdef] )); then compdef _${fn(bin)} ${bin}; fi
`;
    case 'fish':
      return `# ${bin} completion for fish. Load it now:   ${bin} autocomplete fish | source
# or for every shell:  ${bin} autocomplete fish > ~/.config/fish/completions/${bin}.fish
function __${fn(bin)}_complete
    ${bin} complete --shell fish --line (commandline -cp) 2>/dev/null
end
complete -c ${bin} -f -a '(__${fn(bin)}_complete)'
`;
  }
}

/** A shell function name for a binary name. */
function fn(bin: string): string {
  return bin.replace(/[^A-Za-z0-9_]/g, '_');
}

/** The shell the user runs, from $SHELL. */
export function detectShell(env: NodeJS.ProcessEnv = process.env): Shell | undefined {
  const name = (env.SHELL ?? '').split('/').pop() ?? '';
  return (SHELLS as readonly string[]).includes(name) ? (name as Shell) : undefined;
}

/** Global flags a completion line carries: which backend and namespace its keys come from. */
function selection(words: readonly string[]): Selection & { namespace?: string } {
  const out: Selection & { namespace?: string } = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    if (w === '--') break;
    const eq = w.indexOf('=');
    const flag = w.startsWith('--') && eq > 0 ? w.slice(0, eq) : w;
    const name = GLOBAL_VALUE_FLAGS.get(flag);
    if (name === undefined) continue;
    const value = w.startsWith('--') && eq > 0 ? w.slice(eq + 1) : words[++i];
    if (value === undefined) break;
    if (name === 'backend') out.backend = value;
    else if (name === 'profile') out.profile = value;
    else if (name === 'config') out.config = value;
    else if (name === 'namespace') out.namespace = value;
  }
  return out;
}

export interface CompletionOptions {
  /** oclif's loaded commands. */
  commands: Parameters<typeof commandInfos>[0];
  /** How long a slow backend may take before completion gives up on keys (ms). */
  budgetMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Candidates for the command line `line` (as typed, program name first, cursor at its end):
 * the word being completed, unquoted, and the candidates for it, unquoted.
 */
export async function completeLine(
  line: string,
  o: CompletionOptions,
): Promise<{ word: string; candidates: string[] }> {
  const rest = line.replace(/^\s*\S+/, '');
  const split = splitPartial(rest);
  const fresh = split.trailingSpace || split.words.length === 0;
  const done = fresh ? split.words : split.words.slice(0, -1);
  const current = fresh ? '' : (split.words.at(-1) ?? '');
  const sel = selection(done);
  const commands = commandInfos(o.commands).filter((c) => c.words[0] !== 'complete');
  let reg: Promise<ProcessRegistry | undefined> | undefined;
  const registry = () => (reg ??= openForCompletion(sel, o.env));
  const budget = o.budgetMs ?? 1500;
  const timely = <T>(p: Promise<T>, fallback: T): Promise<T> =>
    Promise.race([p, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), budget).unref())]);
  const src: CompletionSource = {
    commands,
    builtins: {},
    namespaces: () =>
      timely(
        registry().then((r) => r?.namespaces() ?? []),
        [],
      ).catch(() => []),
    keys: (prefix, ns) =>
      timely(
        registry().then((r) => (r ? keysByPrefix(r, prefix, ns ?? sel.namespace) : [])),
        [],
      ),
    profiles: () => profiles(sel.config, o.env),
    schemes: () => schemes.map((s) => `${s.scheme}:`),
  };
  try {
    // Global flags before the command (`registry -b URL li<TAB>`): complete as if they followed it.
    const lead = leadingGlobals(done);
    if (lead.pending !== undefined) {
      const name = GLOBAL_VALUE_FLAGS.get(lead.pending);
      const values =
        name === 'namespace'
          ? await src.namespaces()
          : name === 'profile'
            ? src.profiles()
            : name === 'backend'
              ? src.schemes()
              : [];
      return { word: current, candidates: values.filter((v) => v.startsWith(current)) };
    }
    if (lead.count === done.length && current.startsWith('-')) {
      const flags = [
        ...[...GLOBAL_VALUE_FLAGS.keys()].filter((f) => f.startsWith('--')),
        '--json',
        '--help',
        '--version',
      ];
      return { word: current, candidates: flags.filter((f) => f.startsWith(current)).sort() };
    }
    // Leading global flags are already in `sel` (backend, namespace): complete the rest.
    const words = done.slice(lead.count);
    const text = `${words.map(quoteWord).join(' ')}${words.length ? ' ' : ''}${current === '' ? '' : quoteWord(current)}`;
    const [candidates] = await complete(text, src, { raw: true });
    return { word: current, candidates };
  } finally {
    const r = await (reg ? timely(reg, undefined) : undefined);
    if (r) void r.close().catch(() => undefined);
  }
}

/** How many leading words are global flags (with values), and a value flag still waiting for its value. */
function leadingGlobals(done: readonly string[]): { count: number; pending?: string } {
  let i = 0;
  while (i < done.length) {
    const w = done[i] ?? '';
    const eq = w.indexOf('=');
    if (w === '--json') i += 1;
    else if (w.startsWith('--') && eq > 0 && GLOBAL_VALUE_FLAGS.has(w.slice(0, eq))) i += 1;
    else if (GLOBAL_VALUE_FLAGS.has(w)) {
      if (i + 1 === done.length) return { count: i + 1, pending: w };
      i += 2;
    } else break;
  }
  return { count: i };
}

function profiles(config: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  try {
    const f = findConfig(config, env);
    return f ? Object.keys(loadConfig(f).profiles ?? {}).sort() : [];
  } catch {
    return [];
  }
}

/** Open the backend the line selects, read-only in spirit: a missing store file is no store. */
async function openForCompletion(
  sel: Selection & { namespace?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProcessRegistry | undefined> {
  try {
    const r = resolveBackend(sel, env);
    const { info, location } = parseBackendUrl(r.backend);
    if (info.file && !existsSync(location)) return undefined;
    if (info.inProcess) return undefined; // a new process's memory store is empty
    return await ProcessRegistry.open({
      backend: r.backend,
      backendOpts: r.backendOpts,
      namespace: sel.namespace ?? r.namespace,
      cleanupInterval: 0,
      stats: false,
    });
  } catch {
    return undefined;
  }
}
