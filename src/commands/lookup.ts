import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import type { Registration } from '../backends/contract.js';
import { lookupOrThrow } from '../cli/lookup.js';
import { renderLookup } from '../cli/output.js';

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

  async run(): Promise<Registration> {
    const e = await lookupOrThrow(await this.registry(), this.args.key, this.ns);
    if (!this.jsonEnabled() || this.flags.field)
      this.log(renderLookup(e, { field: this.flags.field, output: this.format(), view: this.view() }));
    return e;
  }

  // `--json --field pid` prints just the field.
  public override jsonEnabled(): boolean {
    return super.jsonEnabled() && !this.flags?.field;
  }
}
