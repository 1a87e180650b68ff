/** oclif's command_not_found hook: the project's one-line error, a suggestion, exit 2. */
import type { Hook } from '@oclif/core';
import { suggestCommand } from '../argv.js';

const hook: Hook.CommandNotFound = async function (opts) {
  const typed = opts.id.replaceAll(':', ' ');
  const ids = opts.config.commandIDs.map((c) => c.replaceAll(':', ' '));
  const guess = suggestCommand(typed, ids);
  const hint = guess ? `did you mean "${guess}"? ` : '';
  process.stderr.write(
    `registry: unknown command "${typed}": ${hint}run \`registry --help\` for the list of commands\n`,
  );
  this.exit(2);
};

export default hook;
