import { Args, Flags } from '@oclif/core';
import { metaFlags, metaFromFlags } from '../../cli/flags.js';
import { RegistryCommand } from '../../cli/base.js';
import { InvalidInputError, type Registration } from '../../backends/contract.js';

export default class MetaSet extends RegistryCommand<typeof MetaSet> {
  static override summary = "Replace a registration's metadata (or merge into it with --merge).";
  static override description =
    'Without --merge the whole object is replaced. --merge applies an RFC 7386 JSON merge patch: fields set to null are removed.';
  static override examples = [
    '<%= config.bin %> meta set web-1 --meta role=web --meta port=8080',
    '<%= config.bin %> meta set web-1 --merge --meta port=9090',
    '<%= config.bin %> meta set web-1 --merge --meta-json \'{"draining":true,"port":null}\'',
  ];
  static override args = { key: Args.string({ description: 'the name', required: true }) };
  static override flags = {
    ...metaFlags,
    merge: Flags.boolean({ summary: 'Merge-patch instead of replacing.' }),
  };

  async run(): Promise<Registration> {
    if (this.flags['meta-json'] === undefined && !this.flags.meta)
      throw new InvalidInputError("nothing to set: pass --meta field=value or --meta-json '{…}'");
    const meta = metaFromFlags(this.flags);
    const e = await (
      await this.registry()
    ).updateMetadata(this.args.key, meta, { namespace: this.ns, merge: this.flags.merge });
    if (!this.jsonEnabled()) this.log(JSON.stringify(e.meta, null, 2));
    return e;
  }
}
