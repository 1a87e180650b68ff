import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { count, type CountResult } from '../cli/run/count.js';

export default class Count extends RegistryCommand<typeof Count> {
  static override readOnly = true;
  static override summary = 'Count live registrations.';
  static override examples = ['<%= config.bin %> count', '<%= config.bin %> count --all-namespaces --json'];
  static override flags = {
    'all-namespaces': Flags.boolean({ char: 'A', summary: 'Count per namespace, every namespace.' }),
  };

  // The body is shared with the cold-start fast path (src/cli/lite/run.ts runs the same class).
  async run(): Promise<CountResult> {
    return count.run(this.io(), this.args, this.flags);
  }
}
