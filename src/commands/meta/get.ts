import { Args } from '@oclif/core';
import { RegistryCommand } from '../../cli/base.js';
import { lookupOrThrow, metaFieldOrThrow } from '../../cli/lookup.js';

export default class MetaGet extends RegistryCommand<typeof MetaGet> {
  static override readOnly = true;
  static override summary = "Print a registration's metadata (or one field of it) as JSON.";
  static override examples = ['<%= config.bin %> meta get web-1', '<%= config.bin %> meta get web-1 port'];
  static override args = {
    key: Args.string({ description: 'the name', required: true }),
    field: Args.string({ description: 'one metadata field', required: false }),
  };

  async run(): Promise<unknown> {
    const e = await lookupOrThrow(await this.registry(), this.args.key, this.ns);
    const value = this.args.field === undefined ? e.meta : metaFieldOrThrow(e, this.args.field);
    if (!this.jsonEnabled()) this.log(JSON.stringify(value, null, 2));
    return this.args.field === undefined ? value : { [this.args.field]: value };
  }
}
