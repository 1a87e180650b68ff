import { Args } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { unregister, type UnregisterResult } from '../cli/run/unregister.js';

export default class Unregister extends RegistryCommand<typeof Unregister> {
  static override summary = 'Remove a name.';
  static override description = 'Idempotent: removing an absent name succeeds and says nothing was removed.';
  static override examples = [
    '<%= config.bin %> unregister web-1',
    '<%= config.bin %> unregister web-1 -n prod --json',
  ];
  static override args = { key: Args.string({ description: 'the name', required: true }) };

  // The body is shared with the cold-start fast path (src/cli/lite/run.ts runs the same class).
  async run(): Promise<UnregisterResult> {
    return unregister.run(this.io(), this.args, this.flags);
  }
}
