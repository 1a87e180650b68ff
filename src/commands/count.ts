import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';

export default class Count extends RegistryCommand<typeof Count> {
  static override readOnly = true;
  static override summary = 'Count live registrations.';
  static override examples = ['<%= config.bin %> count', '<%= config.bin %> count --all-namespaces --json'];
  static override flags = {
    'all-namespaces': Flags.boolean({ char: 'A', summary: 'Count per namespace, every namespace.' }),
  };

  async run(): Promise<{ namespaces: Record<string, number>; total: number }> {
    const reg = await this.registry();
    if (this.flags['all-namespaces']) await reg.assertIntact(); // everything is read: a damaged file is refused
    const spaces = this.flags['all-namespaces'] ? await reg.namespaces() : [this.ns ?? reg.namespace];
    const namespaces: Record<string, number> = {};
    for (const ns of spaces) namespaces[ns] = await reg.count({ namespace: ns });
    const total = Object.values(namespaces).reduce((a, b) => a + b, 0);
    if (!this.jsonEnabled()) {
      if (this.flags['all-namespaces']) for (const [ns, n] of Object.entries(namespaces)) this.log(`${ns}\t${n}`);
      else this.log(String(total));
    }
    return { namespaces, total };
  }
}
