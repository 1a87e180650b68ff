/**
 * The base of every command: shared flags (design §4), backend selection, the exit-code contract,
 * `--json` for results and errors, and the hook the REPL uses to run commands on its warm
 * connection (`RegistryCommand.session`).
 */
import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { exitCodes } from '../backends/contract.js';
import { reportError } from './errors.js';
import { ProcessRegistry } from '../registry/service.js';
import { resolveBackend, type Resolved } from './config.js';
import type { CommandIO } from './io.js';
import {
  colorEnabled,
  colors,
  type Colors,
  OUTPUT_FORMATS,
  type OutputFormat,
  toYaml,
  type View,
  viewFor,
} from './output.js';

export type FlagsOf<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof RegistryCommand)['baseFlags'] & T['flags']
>;
export type ArgsOf<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

/** A warm connection the REPL lends to the commands it runs. */
export interface Session {
  registry: ProcessRegistry;
  resolved: Resolved;
  namespace?: string;
  json?: boolean;
  /** Aborted by Ctrl-C in the REPL: long commands (watch, await, list) stop early. */
  signal?: AbortSignal;
}

export abstract class RegistryCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    backend: Flags.string({
      char: 'b',
      summary: 'Backend URL: memory:, sqlite:PATH, http://HOST:PORT, etcd://H:P[,H:P]/prefix.',
      env: undefined,
      helpGroup: 'GLOBAL',
    }),
    profile: Flags.string({
      summary: 'Profile of registry.config.json to use (env REGISTRY_PROFILE).',
      helpGroup: 'GLOBAL',
    }),
    config: Flags.string({
      summary: 'Config file (default: registry.config.json here or above, else $XDG_CONFIG_HOME/registry/config.json).',
      helpGroup: 'GLOBAL',
    }),
    namespace: Flags.string({ char: 'n', summary: 'Namespace (default: "default").', helpGroup: 'GLOBAL' }),
    'node-name': Flags.string({
      summary: "This node's name, whose pids are checked locally (default: env REGISTRY_NODE, else the hostname).",
      helpGroup: 'GLOBAL',
    }),
    output: Flags.string({
      char: 'o',
      summary: 'Output form: json (same as --json), yaml, wide (every column, nothing cut) or name (namespace/key).',
      options: [...OUTPUT_FORMATS],
      helpGroup: 'GLOBAL',
    }),
    'no-headers': Flags.boolean({ summary: 'Print tables without their header line.', helpGroup: 'GLOBAL' }),
  };

  /** Set by the REPL while it runs a command. */
  static session: Session | undefined;

  /** The command only reads: a store that does not exist is not created (exit 6, `no registry at …`). */
  static readOnly = false;

  protected flags!: FlagsOf<T>;
  protected args!: ArgsOf<T>;
  private opened: ProcessRegistry | undefined;

  public override async init(): Promise<void> {
    await super.init();
    const ctor = this.ctor as typeof RegistryCommand;
    const { args, flags } = await this.parse({
      flags: ctor.flags,
      baseFlags: RegistryCommand.baseFlags,
      enableJsonFlag: ctor.enableJsonFlag,
      args: ctor.args,
      strict: ctor.strict,
    });
    this.flags = flags as FlagsOf<T>;
    this.args = args as ArgsOf<T>;
  }

  /** `--json` or `-o json|yaml` given (or `json on` in the REPL): the command's result is the output. */
  public override jsonEnabled(): boolean {
    const f = this.format();
    return super.jsonEnabled() || !!RegistryCommand.session?.json || f === 'json' || f === 'yaml';
  }

  /**
   * `-o/--output`, when it names a form. `dump` and `report` keep their own `-o FILE` (their
   * flag replaces the global one), which is never a form.
   */
  protected format(): OutputFormat | undefined {
    const own = (this.ctor as typeof RegistryCommand).flags?.output;
    if (own && own !== RegistryCommand.baseFlags.output) return undefined;
    return (this.flags as { output?: OutputFormat } | undefined)?.output;
  }

  /** How tables print: fitted on a TTY, plain when piped, `-o wide`, `-o name`, `--no-headers`. */
  protected view(): View {
    const f = this.flags as { 'no-headers'?: boolean };
    return viewFor({ output: this.format(), noHeaders: f['no-headers'] });
  }

  /** `-o yaml` prints the result as YAML; `--json` / `-o json` as oclif does. */
  protected override logJson(json: unknown): void {
    if (this.format() === 'yaml') process.stdout.write(`${toYaml(json)}\n`);
    else super.logJson(json);
  }

  /** The namespace this command works in. */
  protected get ns(): string | undefined {
    return (this.flags as { namespace?: string }).namespace ?? RegistryCommand.session?.namespace;
  }

  /** Which backend, from flags, env and config. */
  protected resolved(): Resolved {
    const f = this.flags as { backend?: string; profile?: string; config?: string };
    const s = RegistryCommand.session;
    if (s && !f.backend && !f.profile) return s.resolved;
    return resolveBackend({ backend: f.backend, profile: f.profile, config: f.config });
  }

  /**
   * The registry: the REPL's warm one when there is one (and no other backend is asked for),
   * else a new one closed when the command ends. One-shot commands do not sweep periodically.
   */
  protected async registry(opts: { cleanupInterval?: number } = {}): Promise<ProcessRegistry> {
    const f = this.flags as { backend?: string; profile?: string; 'node-name'?: string };
    const s = RegistryCommand.session;
    if (s && !f.backend && !f.profile && !f['node-name']) return s.registry;
    if (this.opened) return this.opened;
    const r = this.resolved();
    this.opened = await ProcessRegistry.open({
      backend: r.backend,
      backendOpts: r.backendOpts,
      namespace: this.ns ?? r.namespace,
      nodeName: f['node-name'] ?? r.node,
      cleanupInterval: opts.cleanupInterval ?? 0,
      stats: false,
      create: !(this.ctor as typeof RegistryCommand).readOnly,
    });
    return this.opened;
  }

  /** What a command's shared core (src/cli/run/*.ts, also run by the fast path) sees of this command. */
  protected io(): CommandIO {
    return {
      registry: () => this.registry(),
      ns: this.ns,
      jsonEnabled: () => this.jsonEnabled(),
      format: () => this.format(),
      view: () => this.view(),
      log: (line) => this.log(line),
      colors: () => this.colors(),
    };
  }

  /** Colours for stdout (plain when piped or NO_COLOR). */
  protected colors(): Promise<Colors> {
    return colors(process.stdout);
  }

  protected get color(): boolean {
    return colorEnabled(process.stdout);
  }

  /** Progress and diagnostics: stderr, never stdout. */
  protected note(msg: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${msg}\n`);
  }

  /** Interactive prompts only with a TTY on stdin, outside CI. */
  protected canPrompt(): boolean {
    return !!process.stdin.isTTY && !process.env.CI;
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    if (this.opened) {
      const r = this.opened;
      this.opened = undefined;
      await r.close().catch(() => undefined);
    }
    return super.finally(err);
  }

  /** Errors → one line on stderr (or JSON on stdout with --json) and the documented exit code. */
  public override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    // oclif's own exits (help, version, this.exit) pass through untouched.
    if (err instanceof Errors.ExitError) throw err;
    // oclif's this.log is silent under --json: write the JSON error to stdout ourselves.
    await reportError(err, this.jsonEnabled() && this.format() !== 'yaml');
    return undefined;
  }
}

export { exitCodes };
