import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import type { Registration } from '../backends/contract.js';
import { lookup } from '../cli/run/lookup.js';

export default class Lookup extends RegistryCommand<typeof Lookup> {
  static override readOnly = true;
  static override summary = 'Show the live process registered under a name.';
  static override description = 'Exit 3 when nobody (alive) holds the name. A dead holder found here is removed.';
  static override examples = [
    '<%= config.bin %> lookup web-1',
    'kill -HUP $(<%= config.bin %> lookup web-1 --field pid)',
    '<%= config.bin %> lookup web-1 --json',
  ];
  static override args = { key: Args.string({ description: 'the name', required: true }) };
  static override flags = {
    field: Flags.string({
      char: 'f',
      summary: 'Print one field (pid, node, namespace, or a metadata field) as plain text.',
    }),
  };

  // The body is shared with the cold-start fast path (src/cli/lite/run.ts runs the same class).
  async run(): Promise<Registration> {
    return lookup.run(this.io(), this.args, this.flags);
  }

  public override jsonEnabled(): boolean {
    return super.jsonEnabled() && !(this.flags && lookup.jsonOff?.(this.flags));
  }
}
