import { Args, Command, Flags } from '@oclif/core';
import { InvalidInputError } from '../backends/contract.js';
import { completionScript, detectShell, SHELLS } from '../cli/completion.js';
import { reportError } from '../cli/errors.js';

/** `registry autocomplete [bash|zsh|fish]`: print the shell's completion script. */
export default class Autocomplete extends Command {
  static override summary = 'Print the shell completion script for bash, zsh or fish.';
  static override description =
    'Completes commands, flags, backend schemes, profiles, namespaces and registered keys (read from the ' +
    'backend the line selects, never creating a store). The shell defaults to $SHELL.\n\n' +
    'bash: source <(registry autocomplete bash)   (or append it to ~/.bashrc)\n' +
    'zsh:  source <(registry autocomplete zsh)    (or save it as _registry in a $fpath folder)\n' +
    'fish: registry autocomplete fish > ~/.config/fish/completions/registry.fish';
  static override examples = [
    'source <(<%= config.bin %> autocomplete bash)',
    '<%= config.bin %> autocomplete fish > ~/.config/fish/completions/<%= config.bin %>.fish',
  ];
  static override args = { shell: Args.string({ description: 'bash, zsh or fish (default: from $SHELL)' }) };
  static override flags = { 'bin-name': Flags.string({ summary: 'Complete this command name instead.' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Autocomplete);
    const shell = args.shell ?? detectShell();
    if (shell === undefined || !(SHELLS as readonly string[]).includes(shell))
      throw new InvalidInputError(
        `${shell === undefined ? `cannot tell the shell from SHELL=${process.env.SHELL ?? ''}` : `unsupported shell "${shell}"`}: name one of ${SHELLS.join(', ')}, e.g. registry autocomplete bash`,
      );
    process.stdout.write(completionScript(shell as (typeof SHELLS)[number], flags['bin-name'] ?? this.config.bin));
  }

  public override async catch(err: Error): Promise<unknown> {
    await reportError(err, false);
    return undefined;
  }
}
