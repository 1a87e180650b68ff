import { Args } from '@oclif/core';
import { RegistryCommand } from '../../cli/base.js';
import { metaGet } from '../../cli/run/meta-get.js';

export default class MetaGet extends RegistryCommand<typeof MetaGet> {
  static override readOnly = true;
  static override summary = "Print a registration's metadata (or one field of it) as JSON.";
  static override examples = ['<%= config.bin %> meta get web-1', '<%= config.bin %> meta get web-1 port'];
  static override args = {
    key: Args.string({ description: 'the name', required: true }),
    field: Args.string({ description: 'one metadata field', required: false }),
  };

  // The body is shared with the cold-start fast path (src/cli/lite/run.ts runs the same class).
  async run(): Promise<unknown> {
    return metaGet.run(this.io(), this.args, this.flags);
  }
}
