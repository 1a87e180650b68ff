import { Flags } from '@oclif/core';
import { PhaseCommand } from '../../cli/phase-command.js';
import { batchFlag, liveNodesFlag, phaseFlags } from '../../cli/migrate-command.js';
import type { PhaseArgs } from '../../migrations/phase.js';

export default class MigrateDistribute extends PhaseCommand<typeof MigrateDistribute> {
  static override summary = 'Phase 5: copy and verify into a distributed store (etcd), then switch to it.';
  static override description =
    'Copies the local target into the distributed store (resumable after a kill), repairs keys changed during the copy, proves equivalence, writes profile migrate-distributed and makes it the default.';
  static override examples = [
    '<%= config.bin %> migrate distribute --to etcd://127.0.0.1:2379,127.0.0.1:22379/registry --yes',
  ];
  static override flags = {
    ...phaseFlags,
    ...liveNodesFlag,
    ...batchFlag,
    to: Flags.string({ summary: 'The distributed store (etcd://H:P[,H:P…][/prefix] or http://node).' }),
  };
  protected readonly phase = 'distribute' as const;

  protected question(a: PhaseArgs): string {
    return `Copy into ${a.to ?? 'the distributed store'} and make it the default?`;
  }

  async run() {
    return this.runPhaseCommand({ to: this.flags.to, nodes: this.flags.node });
  }
}
