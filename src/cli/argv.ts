/**
 * Global flags may stand before the command, as with kubectl and etcdctl:
 * `registry -b URL list` runs `registry list -b URL`. oclif only reads flags after the command id,
 * so the entry moves the leading global flags (with their values) behind the command's words and
 * before a `--`, where everything after belongs to a child command (`registry run NAME -- CMD…`).
 */

/** The global flags of every command (src/cli/base.ts) that take a value, by spelling → flag name. */
export const GLOBAL_VALUE_FLAGS: ReadonlyMap<string, string> = new Map([
  ['-b', 'backend'],
  ['--backend', 'backend'],
  ['--profile', 'profile'],
  ['--config', 'config'],
  ['-n', 'namespace'],
  ['--namespace', 'namespace'],
  ['--node-name', 'node'],
  ['-o', 'output'],
  ['--output', 'output'],
]);
/** Global boolean flags. */
const BOOLEAN = new Set(['--json', '--no-headers']);

export function hoistGlobalFlags(argv: readonly string[]): string[] {
  const moved: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === undefined || !a.startsWith('-') || a === '--') break;
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (GLOBAL_VALUE_FLAGS.has(name)) {
      if (a.includes('=')) {
        moved.push(a);
        i += 1;
      } else {
        const v = argv[i + 1];
        if (v === undefined) break; // let oclif report the missing value
        moved.push(a, v);
        i += 2;
      }
    } else if (BOOLEAN.has(a)) {
      moved.push(a);
      i += 1;
    } else {
      break; // --help, --version and unknown flags: oclif's to answer
    }
  }
  if (moved.length === 0 || i >= argv.length) return [...argv];
  const rest = argv.slice(i);
  const dashdash = rest.indexOf('--');
  return dashdash < 0 ? [...rest, ...moved] : [...rest.slice(0, dashdash), ...moved, ...rest.slice(dashdash)];
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const del = (prev[j] ?? 0) + 1;
      const ins = (cur[j - 1] ?? 0) + 1;
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(del, ins, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest command to `id` (space-separated), or undefined when nothing is close. */
export function suggestCommand(id: string, commands: readonly string[]): string | undefined {
  let best: { id: string; d: number } | undefined;
  for (const c of commands) {
    const d = editDistance(id, c);
    if (!best || d < best.d) best = { id: c, d };
  }
  if (!best) return undefined;
  return best.d <= Math.max(2, Math.floor(id.length / 3)) ? best.id : undefined;
}
