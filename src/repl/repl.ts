/**
 * The REPL: one warm `ProcessRegistry` (with its periodic sweep, as befits a long-lived process)
 * lent to the very oclif command classes the CLI runs (`RegistryCommand.session`), plus a few
 * built-ins. Lines come from a terminal (line editor, history, completion) or from a script on
 * stdin (no prompt; stop at the first failure unless --keep-going).
 */
import readline from 'node:readline';
import os from 'node:os';
import { Errors, loadHelpClass, type Config } from '@oclif/core';
import { InvalidInputError, NoRegistryError, NotFoundError } from '../backends/contract.js';
import { parseBackendUrl, schemes } from '../backends/open.js';
import { RegistryCommand, type Session } from '../cli/base.js';
import { findConfig, loadConfig, resolveBackend, type Resolved } from '../config/profiles.js';
import { reportError } from '../cli/errors.js';
import { colors, type Colors } from '../cli/output.js';
import { ProcessRegistry } from '../registry/service.js';
import { validateNamespace } from '../registry/validate.js';
import { commandInfos, complete, hint, keysByPrefix, type CommandInfo, type CompletionSource } from './complete.js';
import { HISTORY_SIZE, HistoryFile, historyPath } from './history.js';
import { splitLine } from './parse.js';
import { LineEditor } from './terminal.js';

export interface ReplOptions {
  /** The oclif Config, loaded once (the REPL command's own). */
  config: Config;
  resolved: Resolved;
  namespace?: string;
  node?: string;
  /** `--config` given to the REPL: `use PROFILE` reads the same file. */
  configFile?: string;
  json?: boolean;
  keepGoing?: boolean;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}

/** An oclif command class as loaded; `_run` is what `Command.run` calls after loading the Config. */
type CommandClass = new (argv: string[], config: Config) => { _run(): Promise<unknown> };

/** Exit status of a command interrupted by Ctrl-C (128 + SIGINT, as in a shell). */
export const INTERRUPTED = 130;

interface Builtin {
  usage: string;
  summary: string;
  values?: () => Promise<string[]> | string[];
  run(args: string[]): Promise<number> | number;
}

/** A line's outcome: its exit status, or a request to leave with a code. */
type Outcome = { status: number } | { exit: number } | undefined;

export class Repl {
  private readonly session: Session;
  private readonly commands: CommandInfo[];
  private readonly builtins: Record<string, Builtin>;
  private readonly out: NodeJS.WriteStream;
  private readonly input: NodeJS.ReadStream;
  private status = 0;
  private firstFailure = 0;
  private timing = false;
  private running: AbortController | undefined;
  private interrupted = false;
  private interrupts = 0;
  private stopScript: (() => void) | undefined;
  private history: HistoryFile | undefined;
  private editor: LineEditor | undefined;
  private c!: Colors;
  private readonly loaded = new Map<string, CommandClass>();

  private constructor(
    private readonly o: ReplOptions,
    registry: ProcessRegistry,
  ) {
    this.out = o.output ?? process.stdout;
    this.input = o.input ?? process.stdin;
    this.session = { registry, resolved: o.resolved, namespace: registry.namespace, json: !!o.json };
    this.commands = commandInfos(o.config.commands);
    this.builtins = this.makeBuiltins();
  }

  /** Open the backend (with a periodic sweep) and make the REPL. */
  static async open(o: ReplOptions): Promise<Repl> {
    const reg = await openRegistry(o.resolved, o.namespace, o.node);
    const repl = new Repl(o, reg);
    repl.c = await colors(repl.out);
    return repl;
  }

  get interactive(): boolean {
    return !!this.input.isTTY && !!this.out.isTTY;
  }

  /** Run until `exit`, Ctrl-D or the end of the script; resolves to the process exit code. */
  async run(): Promise<number> {
    RegistryCommand.session = this.session;
    const onSigint = () => this.onSigint();
    // SIGTERM / SIGHUP (terminal closed): give the terminal its mode back, close the store, leave.
    const onTerm = (sig: NodeJS.Signals) => {
      this.editor?.close();
      const code = 128 + (os.constants.signals[sig] ?? 0);
      void this.session.registry.close().finally(() => process.exit(code));
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onTerm);
    process.on('SIGHUP', onTerm);
    try {
      return this.interactive ? await this.runInteractive() : await this.runScript();
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onTerm);
      RegistryCommand.session = undefined;
      this.history?.trim();
      await this.session.registry.close().catch(() => undefined);
    }
  }

  /** Run one line (a command or a built-in) and return its outcome (`timing on` reports its duration). */
  async execLine(line: string): Promise<Outcome> {
    const t0 = performance.now();
    let words: string[];
    try {
      words = splitLine(line);
    } catch (err) {
      return { status: await this.report(err) };
    }
    const [first] = words;
    if (first === undefined) return undefined;
    let outcome: Outcome;
    const b = this.builtin(first);
    if (first === 'exit' || first === 'quit') {
      const code = words[1] === undefined ? (this.interactive ? 0 : this.firstFailure) : Number(words[1]);
      if (!Number.isInteger(code) || code < 0 || code > 255)
        return { status: await this.report(new InvalidInputError(`exit code must be 0-255, not ${words[1]}`)) };
      return { exit: code };
    }
    if (b) {
      try {
        outcome = { status: await b.run(words.slice(1)) };
      } catch (err) {
        outcome = { status: await this.report(err) };
      }
    } else {
      outcome = { status: await this.runCommand(words) };
    }
    if (this.timing) process.stderr.write(`${this.c.dim(`Time: ${(performance.now() - t0).toFixed(3)} ms`)}\n`);
    return outcome;
  }

  // --- running oclif commands --------------------------------------------------------------------

  /** The command id named by the first words (`meta get` → `meta:get`) and the rest. */
  private resolveCommand(words: string[]): { id?: string; argv: string[]; topic?: string[] } {
    const ids = new Set(this.o.config.commandIDs);
    const [first] = words;
    if (first !== undefined && first.includes(':') && ids.has(first)) return { id: first, argv: words.slice(1) };
    for (let n = Math.min(words.length, 4); n > 0; n--) {
      const id = words.slice(0, n).join(':');
      if (ids.has(id)) return { id, argv: words.slice(n) };
    }
    const prefix = words.filter((w) => !w.startsWith('-'));
    for (let n = prefix.length; n > 0; n--) {
      const t = prefix.slice(0, n).join(':');
      if (this.o.config.commandIDs.some((id) => id.startsWith(`${t}:`))) return { argv: [], topic: prefix.slice(0, n) };
    }
    return { argv: words.slice(1) };
  }

  private async runCommand(words: string[]): Promise<number> {
    const { id, argv, topic } = this.resolveCommand(words);
    if (topic) {
      await this.showHelp(topic);
      return 0;
    }
    if (!id) return this.report(new InvalidInputError(`unknown command "${words[0]}": type help for the list`));
    if (id === 'repl')
      return this.report(new InvalidInputError('already in the REPL: use `use URL|PROFILE` to switch backends'));
    const dashdash = argv.indexOf('--');
    const before = dashdash < 0 ? argv : argv.slice(0, dashdash);
    if (before.includes('--help')) {
      await this.showHelp(id.split(':'));
      return 0;
    }
    if ((id === 'restore' || id === 'import') && before.some((a) => a === '-')) {
      return this.report(new InvalidInputError(`${id} - reads stdin, which is the REPL's input: give the file's path`));
    }
    const ac = new AbortController();
    this.running = ac;
    this.interrupted = false;
    this.interrupts = 0;
    this.session.signal = ac.signal;
    process.exitCode = undefined;
    // The terminal is not read while a command runs: hold the event loop open for commands that
    // wait on nothing but in-process events (a `watch` of a memory: backend).
    const keepAlive = setInterval(() => undefined, 2 ** 30);
    let code: number;
    try {
      await this.invoke(id, argv);
      code = Number(process.exitCode ?? 0);
    } catch (err) {
      code =
        err instanceof Errors.ExitError ? (err.oclif.exit ?? 0) : await this.report(err, before.includes('--json'));
    } finally {
      clearInterval(keepAlive);
      this.running = undefined;
      this.session.signal = undefined;
      process.exitCode = undefined;
    }
    if (this.interrupted && code !== 0) code = INTERRUPTED;
    return code;
  }

  /**
   * What `config.runCommand(id, argv)` does — prerun hook, `Command.run`, postrun hook — minus
   * `Command.run`'s reload of the Config (about half of a warm lookup's time): the class is
   * loaded once and instantiated on the REPL's one Config, exactly as `Command.run` would after
   * its reload.
   */
  private async invoke(id: string, argv: string[]): Promise<unknown> {
    const config = this.o.config;
    let C = this.loaded.get(id);
    if (!C) {
      const found = config.findCommand(id, { must: true });
      C = (await found.load()) as unknown as CommandClass;
      this.loaded.set(id, C);
    }
    await config.runHook('prerun', { argv, Command: C as never });
    const cmd = new C(argv, config);
    const result = await cmd._run();
    await config.runHook('postrun', { argv, Command: C as never, result });
    return result;
  }

  private onSigint(): void {
    if (this.running) {
      // A command that does not watch the signal keeps running: a third Ctrl-C (a second one in
      // a script) leaves the REPL rather than leaving the user stuck.
      this.interrupts++;
      if (this.interrupts >= (this.interactive ? 3 : 2)) {
        process.stderr.write('registry: the command did not stop: leaving the REPL\n');
        process.exit(INTERRUPTED);
      }
      if (this.interactive) this.out.write(this.interrupts === 2 ? '\n(Ctrl-C once more leaves the REPL)\n' : '\n');
      this.interrupted = true;
      this.running.abort();
    } else if (this.stopScript) {
      this.interrupted = true;
      this.stopScript();
    }
  }

  private async report(err: unknown, json = false): Promise<number> {
    const code = await reportError(err, json || !!this.session.json);
    process.exitCode = undefined;
    return code;
  }

  private async showHelp(words: string[]): Promise<void> {
    const Help = await loadHelpClass(this.o.config);
    const pj = this.o.config.pjson as { oclif?: { helpOptions?: object } };
    await new Help(this.o.config, pj.oclif?.helpOptions).showHelp(words);
  }

  // --- script mode -------------------------------------------------------------------------------

  private async runScript(): Promise<number> {
    const rl = readline.createInterface({ input: this.input, terminal: false, crlfDelay: Infinity });
    this.stopScript = () => rl.close();
    try {
      for await (const line of rl) {
        const r = await this.execLine(line);
        if (r && 'exit' in r) return r.exit;
        if (r) this.record(r.status);
        if (this.interrupted) return INTERRUPTED;
        if (r && r.status !== 0 && !this.o.keepGoing) return r.status;
      }
      return this.interrupted ? INTERRUPTED : this.firstFailure;
    } finally {
      this.stopScript = undefined;
      rl.close();
    }
  }

  private record(status: number): void {
    this.status = status;
    if (status !== 0 && this.firstFailure === 0) this.firstFailure = status;
  }

  // --- terminal mode -----------------------------------------------------------------------------

  private async runInteractive(): Promise<number> {
    this.history = new HistoryFile(historyPath(this.session.resolved.backend));
    const source = this.completionSource();
    const editor = new LineEditor({
      input: this.input,
      output: this.out,
      history: this.history.load(),
      historySize: HISTORY_SIZE,
      completer: (line) => complete(line, source),
      hint: (line) => hint(line, source),
      dim: (s) => this.c.dim(s),
    });
    this.editor = editor;
    this.out.write(
      `${this.c.dim(`registry repl on ${this.session.resolved.backend} — help for commands, TAB completes, Ctrl-R searches, Ctrl-D leaves`)}\n`,
    );
    return new Promise<number>((resolve) => {
      const queue: string[] = [];
      let busy = false;
      let finished = false;
      const finish = (code: number) => {
        if (finished) return;
        finished = true;
        editor.close();
        this.input.pause();
        resolve(code);
      };
      const drain = async () => {
        busy = true;
        while (queue.length) {
          const line = queue.shift()!;
          this.history?.append(line);
          const r = await this.execLine(line);
          if (r && 'exit' in r) return finish(r.exit);
          if (r) this.record(r.status);
        }
        busy = false;
        editor.resume(this.prompt());
      };
      editor.on('line', (line: string) => {
        queue.push(line);
        if (!busy) void drain();
      });
      editor.on('interrupt', () => editor.cancelLine());
      editor.on('close', () => {
        if (!finished) this.out.write('\n');
        finish(0);
      });
      editor.resume(this.prompt());
    });
  }

  /** `sqlite:~/x.db default>` (the last status in brackets when it was not 0). */
  private prompt(): string {
    const r = this.session.resolved;
    const home = os.homedir();
    const where = r.profile ?? (home.length > 1 ? r.backend.replace(home, '~') : r.backend);
    const st = this.status ? ` ${this.c.bad(`[${this.status}]`)}` : '';
    return `${this.c.bold(where)} ${this.c.ok(this.session.namespace ?? 'default')}${st}> `;
  }

  private completionSource(): CompletionSource {
    return {
      commands: this.commands,
      builtins: this.builtins,
      namespaces: () => this.session.registry.namespaces().catch(() => []),
      keys: (prefix, ns) => keysByPrefix(this.session.registry, prefix, ns ?? this.session.namespace),
      profiles: () => this.profiles(),
      schemes: () => schemes.map((s) => `${s.scheme}:`),
    };
  }

  private profiles(): string[] {
    try {
      const f = findConfig(this.o.configFile);
      return f ? Object.keys(loadConfig(f).profiles ?? {}) : [];
    } catch {
      return [];
    }
  }

  // --- built-ins ---------------------------------------------------------------------------------

  private makeBuiltins(): Record<string, Builtin> {
    const onOff = (what: string, set: (v: boolean) => void, get: () => boolean) => (args: string[]) => {
      if (args.length === 0) {
        this.out.write(`${what} ${get() ? 'on' : 'off'}\n`);
        return 0;
      }
      if (args.length > 1 || (args[0] !== 'on' && args[0] !== 'off'))
        throw new InvalidInputError(`usage: ${what} on|off`);
      set(args[0] === 'on');
      return 0;
    };
    return {
      use: {
        usage: 'URL|PROFILE',
        summary: 'switch to another backend or config profile (the old connection is closed)',
        values: () => [...this.profiles(), ...schemes.map((s) => `${s.scheme}:`)],
        run: (a) => this.use(a),
      },
      ns: {
        usage: '[NAME]',
        summary: 'show or switch the namespace commands use',
        values: () => this.session.registry.namespaces().catch(() => []),
        run: (a) => this.ns(a),
      },
      json: {
        usage: 'on|off',
        summary: 'print every result as JSON (like --json on each command)',
        values: () => ['on', 'off'],
        run: onOff(
          'json',
          (v) => (this.session.json = v),
          () => !!this.session.json,
        ),
      },
      timing: {
        usage: 'on|off',
        summary: 'print how long each command took (on stderr)',
        values: () => ['on', 'off'],
        run: onOff(
          'timing',
          (v) => (this.timing = v),
          () => this.timing,
        ),
      },
      help: {
        usage: '[COMMAND]',
        summary: "list commands, or show one command's help",
        values: () => [...new Set(this.commands.flatMap((c) => c.words.slice(0, 1)))],
        run: (a) => this.help(a),
      },
      '$?': {
        usage: '',
        summary: 'print the exit status of the last command (0 ok, 2 invalid, 3 not found, 4 conflict, …)',
        run: () => this.printStatus(),
      },
      exit: { usage: '[CODE]', summary: 'leave the REPL (also quit, Ctrl-D)', run: () => 0 },
      quit: { usage: '[CODE]', summary: 'leave the REPL', run: () => 0 },
    };
  }

  /** The built-in of that name (own keys only: `constructor` is not one). */
  private builtin(name: string): Builtin | undefined {
    return Object.hasOwn(this.builtins, name) ? this.builtins[name] : undefined;
  }

  private printStatus(): number {
    this.out.write(`${this.status}\n`);
    return this.status;
  }

  private async use(args: string[]): Promise<number> {
    const [target] = args;
    if (args.length !== 1 || target === undefined)
      throw new InvalidInputError('usage: use URL|PROFILE (e.g. use memory:, use sqlite:./r.db, use prod)');
    const isUrl = /^[a-z][a-z0-9+.-]*:/i.test(target);
    const resolved = resolveBackend(isUrl ? { backend: target } : { profile: target, config: this.o.configFile });
    const ns = resolved.namespace ?? this.session.namespace;
    const reg = await openRegistry(resolved, ns, this.o.node);
    const old = this.session.registry;
    this.session.registry = reg;
    this.session.resolved = resolved;
    this.session.namespace = reg.namespace;
    await old.close().catch(() => undefined);
    if (this.editor) {
      this.history?.trim();
      this.history = new HistoryFile(historyPath(resolved.backend));
      this.editor.setHistory(this.history.load());
    }
    this.out.write(
      `using ${resolved.backend}${resolved.profile ? ` (profile ${resolved.profile})` : ''}, namespace ${reg.namespace}\n`,
    );
    return 0;
  }

  private ns(args: string[]): number {
    if (args.length === 0) {
      this.out.write(`${this.session.namespace}\n`);
      return 0;
    }
    if (args.length > 1) throw new InvalidInputError('usage: ns NAME');
    this.session.namespace = validateNamespace(args[0]);
    return 0;
  }

  private async help(args: string[]): Promise<number> {
    const [name] = args;
    if (name !== undefined) {
      const b = this.builtin(name);
      if (b) {
        this.out.write(`${name} ${b.usage}\n  ${b.summary}\n`);
        return 0;
      }
      const { id, topic } = this.resolveCommand(args);
      if (!id && !topic) throw new NotFoundError('commands', args.join(' '));
      await this.showHelp(args);
      return 0;
    }
    const rows = (list: Array<[string, string]>) => {
      const w = Math.max(...list.map(([a]) => a.length));
      return list.map(([a, s]) => `  ${a.padEnd(w)}  ${this.c.dim(s)}`).join('\n');
    };
    const b = Object.entries(this.builtins).map(([n, x]): [string, string] => [`${n} ${x.usage}`.trim(), x.summary]);
    const cmds = this.commands.map((c): [string, string] => [c.words.join(' '), c.summary ?? '']);
    this.out.write(
      `${this.c.bold('REPL commands')}\n${rows(b)}\n\n${this.c.bold('Registry commands')} (the CLI's commands and flags; COMMAND --help or help COMMAND for details)\n${rows(cmds)}\n`,
    );
    return 0;
  }
}

// --- helpers ---------------------------------------------------------------------------------------

/**
 * The REPL's registry: a long-lived process, so the periodic sweep runs (cleanupInterval). Opening
 * creates nothing: on a `sqlite:` file that does not exist yet, the first write creates it (reads
 * before it say there is no registry, exit 6, as the CLI's read-only commands do).
 */
async function openRegistry(
  r: Resolved,
  namespace: string | undefined,
  node: string | undefined,
): Promise<ProcessRegistry> {
  const opts = {
    backendOpts: r.backendOpts,
    namespace: namespace ?? r.namespace,
    nodeName: node ?? r.node,
    stats: true,
    // An interactive session: lookups from the feed-coherent cache (its own writes drop a key at once).
    cache: true,
  };
  try {
    return await ProcessRegistry.open({ backend: r.backend, ...opts, create: false });
  } catch (err) {
    const { info, location } = parseBackendUrl(r.backend);
    if (!(err instanceof NoRegistryError) || !info.loadOnFirstWrite) throw err;
    const createOnFirstWrite = await info.loadOnFirstWrite();
    return ProcessRegistry.openWith((ctx) => createOnFirstWrite(location, r.backendOpts, ctx), opts);
  }
}

export { keysByPrefix };
