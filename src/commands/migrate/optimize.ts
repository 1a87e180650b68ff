import { Flags } from '@oclif/core';
import { PhaseCommand } from '../../cli/phase-command.js';
import { phaseFlags } from '../../cli/migrate-command.js';

export default class MigrateOptimize extends PhaseCommand<typeof MigrateOptimize> {
  static override summary = 'Phase 4: switch to the pure target, retire the old store, compact.';
  static override description =
    'A last repair from the old store, then verify target vs the old effective view (must be equivalent, else exit 5 and nothing switches); migrate-target becomes the default; the old store is retired but left on disk for rollback; a SQLite target is analysed and vacuumed.';
  static override examples = ['<%= config.bin %> migrate optimize --yes'];
  static override flags = {
    ...phaseFlags,
    'accept-changes': Flags.boolean({
      summary:
        'Accept that the keys the report names answer differently afterwards (without it, a changed answer fails the phase with exit 5).',
    }),
  };
  protected readonly phase = 'optimize' as const;

  protected question(): string {
    return 'Switch to the target store and retire the old one?';
  }

  async run() {
    return this.runPhaseCommand({ acceptChanges: this.flags['accept-changes'] });
  }
}
