import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { InvalidInputError } from '../backends/contract.js';
import { Repl } from '../repl/repl.js';

export default class ReplCommand extends RegistryCommand<typeof ReplCommand> {
  static override summary = 'An interactive shell on one warm connection: every command, no start-up cost.';
  static override description = `Runs the same commands as the CLI (same names, flags, output and exit codes) on a registry it keeps open, with a periodic sweep of dead registrations while it runs. Built-ins: use URL|PROFILE, ns NAME, json on|off, timing on|off, help [COMMAND], $? (last exit status), exit.

On a terminal: TAB completes commands, flags, namespaces and keys; a dim hint shows what a command still expects; history is kept per backend under $XDG_STATE_HOME/registry/history/; Ctrl-R searches it; Ctrl-C cancels the running command (or the line); Ctrl-D leaves.

With stdin not a terminal, lines are run as a script with no prompt: the REPL stops at the first failing line and exits with its code, or with --keep-going runs every line and exits with the first failure's code.`;
  static override examples = [
    '<%= config.bin %> repl',
    '<%= config.bin %> repl --backend sqlite:./registry.db -n prod',
    'printf "register web --pid 4242\\nlookup web --field pid\\n" | <%= config.bin %> repl -b memory:',
    '<%= config.bin %> repl --keep-going < checks.txt',
  ];
  static override flags = {
    'keep-going': Flags.boolean({
      char: 'k',
      summary: "In a script, run every line even after a failure (exit with the first failure's code).",
    }),
  };

  async run(): Promise<void> {
    if (RegistryCommand.session) throw new InvalidInputError('already in the REPL');
    const resolved = this.resolved();
    const repl = await Repl.open({
      config: this.config,
      resolved,
      namespace: this.flags.namespace,
      node: this.flags['node-name'],
      configFile: this.flags.config,
      json: this.flags.json,
      keepGoing: this.flags['keep-going'],
    });
    const code = await repl.run();
    process.exitCode = code;
  }
}
