import { Flags } from '@oclif/core';
import { PhaseCommand } from '../../cli/phase-command.js';
import { batchFlag, phaseFlags } from '../../cli/migrate-command.js';
import type { PhaseArgs } from '../../migrations/phase.js';

export default class MigrateHybrid extends PhaseCommand<typeof MigrateHybrid> {
  static override summary = 'Phase 2: backfill the target from the current store; dual-write from now on.';
  static override description =
    'Writes profiles migrate-target and migrate-hybrid (hybrid: primary = current store, backup = target; writers on it dual-write), copies every live entry into the target in bounded memory, repairs keys changed during the copy and proves the target equals the source. A killed run resumes from the last journaled batch.';
  static override examples = [
    '<%= config.bin %> migrate hybrid --to sqlite:./registry.db --yes',
    '<%= config.bin %> migrate hybrid --to sqlite:./registry.db --dry-run',
  ];
  static override flags = {
    ...phaseFlags,
    ...batchFlag,
    to: Flags.string({ summary: 'The clean store to fill (sqlite:PATH, memory:, etcd://…, http://…).' }),
  };
  protected readonly phase = 'hybrid' as const;

  protected question(a: PhaseArgs): string {
    return `Backfill ${a.to ?? 'the target'} from the current store?`;
  }

  async run() {
    return this.runPhaseCommand({ to: this.flags.to });
  }
}
