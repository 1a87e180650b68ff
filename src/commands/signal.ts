import { Args } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { parseSignal } from '../registry/liveness.js';

export { parseSignal };

export default class Signal extends RegistryCommand<typeof Signal> {
  static override summary = 'Send a signal to the local process registered under a name.';
  static override description =
    'The process is checked right before the signal (it runs, and has the start time recorded at registration: a reused pid is never signalled). Through a node (-b http://…) the node checks and sends for entries of its node name; entries of this machine’s node name are checked and sent here; others are refused (exit 2).';
  static override examples = [
    '<%= config.bin %> signal web-1',
    '<%= config.bin %> signal web-1 HUP',
    '<%= config.bin %> signal web-1 9',
  ];
  static override args = {
    key: Args.string({ description: 'the name', required: true }),
    signal: Args.string({ description: 'signal name or number (default TERM)', required: false, default: 'TERM' }),
  };

  async run(): Promise<{ key: string; pid: number; signal: string }> {
    const sig = parseSignal(this.args.signal);
    const reg = await this.registry();
    const e = await reg.signal(this.args.key, sig, { namespace: this.ns });
    if (!this.jsonEnabled()) this.log(`sent ${sig} to ${e.key} (pid ${e.pid})`);
    return { key: e.key, pid: e.pid, signal: String(sig) };
  }
}
