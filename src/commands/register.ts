import { Args, Flags } from '@oclif/core';
import { metaFlags } from '../cli/flags.js';
import { RegistryCommand } from '../cli/base.js';
import type { Registration } from '../backends/contract.js';
import { register } from '../cli/run/register.js';

export default class Register extends RegistryCommand<typeof Register> {
  static override summary = 'Register a name for a process.';
  static override description =
    'Binds KEY to a live process. The same pid registering again replaces the metadata; a dead holder is replaced; a live holder makes it fail with exit 4 and names the holder.';
  static override examples = [
    '<%= config.bin %> register web-1 --pid 4242 --meta role=web --meta port=8080',
    '<%= config.bin %> register worker --pid $$ --meta-json \'{"queues":["a","b"]}\'',
    '<%= config.bin %> register db --pid 77 --node host-b -n prod',
  ];
  static override args = { key: Args.string({ description: 'the name to register', required: true }) };
  static override flags = {
    pid: Flags.string({ char: 'p', summary: 'Process id (default: the parent shell, $PPID).' }),
    ...metaFlags,
    node: Flags.string({
      summary:
        "The node that owns the pid (default: this node, env REGISTRY_NODE or the hostname). Other nodes' pids are not checked here.",
    }),
  };

  // The body is shared with the cold-start fast path (src/cli/lite/run.ts runs the same class).
  async run(): Promise<Registration> {
    return register.run(this.io(), this.args, this.flags);
  }
}
