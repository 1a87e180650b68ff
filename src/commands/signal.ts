import { constants } from 'node:os';
import { Args } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { InvalidInputError, NotFoundError } from '../backends/contract.js';

export default class Signal extends RegistryCommand<typeof Signal> {
  static override summary = 'Send a signal to the local process registered under a name.';
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
    const e = await reg.lookup(this.args.key, { namespace: this.ns });
    if (!e) throw new NotFoundError(this.ns ?? reg.namespace, this.args.key);
    if (e.node !== reg.nodeName) {
      throw new InvalidInputError(
        `"${e.key}" is held by pid ${e.pid} on node ${e.node}, not this node (${reg.nodeName}): run the signal there`,
      );
    }
    try {
      process.kill(e.pid, sig);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') throw new NotFoundError(e.namespace, e.key);
      if (code === 'EPERM')
        throw new InvalidInputError(`not permitted to signal pid ${e.pid}: run as its owner`, { cause: err });
      throw err;
    }
    if (!this.jsonEnabled()) this.log(`sent ${sig} to ${e.key} (pid ${e.pid})`);
    return { key: e.key, pid: e.pid, signal: String(sig) };
  }
}

export function parseSignal(text: string): NodeJS.Signals | number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 0 && n <= 64) return n;
  } else {
    const name = (
      text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`
    ) as NodeJS.Signals;
    if (name in constants.signals) return name;
  }
  throw new InvalidInputError(`unknown signal ${JSON.stringify(text)}: use a name like TERM, HUP, KILL or a number`);
}
