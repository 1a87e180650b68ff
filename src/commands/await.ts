import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { TimeoutError, type Registration } from '../backends/contract.js';
import { parseDuration } from '../registry/validate.js';
import { pause, throwIfCancelled } from '../cli/cancel.js';

export default class Await extends RegistryCommand<typeof Await> {
  static override summary = 'Wait until a name is registered by a live process.';
  static override description =
    'Polls with backoff (10 ms doubling to 250 ms) until NAME appears; exit 3 when --timeout passes first.';
  static override examples = [
    '<%= config.bin %> await db --timeout 30s && ./migrate.sh',
    '<%= config.bin %> await web-1 --timeout 500ms --json',
  ];
  static override args = { key: Args.string({ description: 'the name to wait for', required: true }) };
  static override flags = {
    timeout: Flags.string({ char: 't', summary: 'Give up after this long (500ms, 10s, 2m).', default: '30s' }),
  };

  async run(): Promise<Registration> {
    const timeoutMs = parseDuration(this.flags.timeout, '--timeout');
    const reg = await this.registry();
    const deadline = Date.now() + timeoutMs;
    const signal = RegistryCommand.session?.signal;
    let delay = 10;
    for (;;) {
      const e = await reg.lookup(this.args.key, { namespace: this.ns });
      if (e) {
        if (!this.jsonEnabled()) this.log(`${this.args.key} is held by pid ${e.pid} on ${e.node}`);
        return e;
      }
      throwIfCancelled(signal, `waiting for "${this.args.key}"`);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TimeoutError(
          `"${this.args.key}" was not registered within ${this.flags.timeout}: is its process running? raise --timeout`,
          {
            details: { key: this.args.key, timeoutMs },
          },
        );
      }
      await pause(Math.min(delay, left), signal);
      delay = Math.min(delay * 2, 250);
    }
  }
}
