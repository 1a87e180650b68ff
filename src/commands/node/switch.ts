import { Flags } from '@oclif/core';
import { InvalidInputError } from '../../backends/contract.js';
import { RegistryCommand } from '../../cli/base.js';
import { fieldTable } from '../../cli/output.js';

export default class NodeSwitch extends RegistryCommand<typeof NodeSwitch> {
  static override summary = 'Move a running node to another backend, with no lost and no failed operation.';
  static override description = [
    'The node named by --backend http://HOST:PORT dual-writes to the new backend, backfills it and compares both stores while writes flow, catches up the keys written meanwhile, then pauses writes (they wait, none fail) only to catch up and digest-verify the last few, flips and retires the old store. The change feed continues with the same revisions.',
    'Any two backends: memory, sqlite, etcd, in either direction (not another node: restart on it). Exit 4 when a switch is already running or verification fails (the node stays on its backend).',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> node switch --to sqlite:/var/lib/registry/registry.db -b http://127.0.0.1:7070',
  ];
  static override flags = {
    to: Flags.string({ summary: 'Backend URL the node moves to (as the node sees paths).', required: true }),
    'to-opts': Flags.string({ summary: 'backendOpts of the new backend, as a JSON object.' }),
  };

  async run(): Promise<Record<string, unknown>> {
    const reg = await this.registry();
    const node = reg.node();
    if (!node)
      throw new InvalidInputError(
        `node switch needs a node: pass --backend http://HOST:PORT (the backend here is ${reg.backend.url})`,
      );
    let opts: Record<string, unknown> = {};
    if (this.flags['to-opts'] !== undefined) {
      try {
        opts = JSON.parse(this.flags['to-opts']);
      } catch {
        throw new InvalidInputError('--to-opts must be a JSON object');
      }
      if (!opts || typeof opts !== 'object' || Array.isArray(opts))
        throw new InvalidInputError('--to-opts must be a JSON object');
    }
    this.note(`switching ${reg.backend.url} to ${this.flags.to}…`);
    const r = await node.switchNode(this.flags.to, opts);
    if (!this.jsonEnabled()) {
      this.log(
        fieldTable(
          [
            ['from', String(r.from)],
            ['to', String(r.to)],
            ['copied', Number(r.copied)],
            ['repaired after backfill', Number(r.repaired)],
            ['caught up in the pause', Number(r.delta)],
            ['entries verified', Number(r.entries)],
            ['writes paused', `${Number(r.pausedMs).toFixed(1)} ms`],
            ['took', `${Number(r.durationMs).toFixed(0)} ms`],
            ['feed revision at flip', Number(r.revision)],
          ],
          this.view(),
        ),
      );
    }
    return r;
  }
}
