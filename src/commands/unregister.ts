import { Args } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';

export default class Unregister extends RegistryCommand<typeof Unregister> {
  static override summary = 'Remove a name.';
  static override description = 'Idempotent: removing an absent name succeeds and says nothing was removed.';
  static override examples = [
    '<%= config.bin %> unregister web-1',
    '<%= config.bin %> unregister web-1 -n prod --json',
  ];
  static override args = { key: Args.string({ description: 'the name', required: true }) };

  async run(): Promise<{ namespace: string; key: string; removed: boolean }> {
    const reg = await this.registry();
    const removed = await reg.unregister(this.args.key, { namespace: this.ns });
    const namespace = this.ns ?? reg.namespace;
    if (!this.jsonEnabled())
      this.log(removed ? `unregistered ${this.args.key}` : `${this.args.key} was not registered (nothing to do)`);
    return { namespace, key: this.args.key, removed };
  }
}
