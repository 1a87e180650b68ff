import { Command, Flags } from '@oclif/core';
import { completeLine, SHELLS } from '../cli/completion.js';
import { quoteWord } from '../repl/parse.js';

/**
 * Hidden: the candidates for a command line, for the scripts of `registry autocomplete`. bash and
 * zsh get the word being completed on the first line, then shell-quoted candidates; fish gets the
 * bare candidates (it quotes them itself). Never fails: no candidates is an empty answer.
 */
export default class Complete extends Command {
  static override hidden = true;
  static override summary = 'Completion candidates for a command line (used by the autocomplete scripts).';
  static override flags = {
    line: Flags.string({ required: true, summary: 'The command line up to the cursor.' }),
    shell: Flags.string({ options: [...SHELLS], default: 'bash' }),
  };

  async run(): Promise<void> {
    let out = '';
    try {
      const { flags } = await this.parse(Complete);
      const { word, candidates } = await completeLine(flags.line, { commands: this.config.commands });
      out =
        flags.shell === 'fish'
          ? candidates.map((c) => `${c}\n`).join('')
          : `${word}\n${candidates.map((c) => `${quoteWord(c)}\n`).join('')}`;
    } catch {
      out = '';
    }
    // A slow backend's client may keep the event loop alive: answer and leave.
    process.stdout.write(out, () => process.exit(0));
  }
}
