import { Flags } from '@oclif/core';
import { PhaseCommand } from '../../cli/phase-command.js';
import { liveNodesFlag, phaseFlags } from '../../cli/migrate-command.js';

export default class MigrateCutover extends PhaseCommand<typeof MigrateCutover> {
  static override summary = 'Phase 3: make the hybrid the active backend, proven by shadow reads.';
  static override description =
    'Repairs keys written only to the old store, then looks every key up through the old path and through the hybrid; any real mismatch stops the cut-over (exit 5). Keys where the legacy lookup and listing already disagree are counted apart. Then migrate-hybrid becomes the default profile.';
  static override examples = ['<%= config.bin %> migrate cutover --yes', '<%= config.bin %> migrate cutover --dry-run'];
  static override flags = {
    ...phaseFlags,
    ...liveNodesFlag,
    'accept-changes': Flags.boolean({
      summary:
        'Accept that the keys the report names answer differently afterwards (without it, a changed answer fails the phase with exit 5).',
    }),
  };
  protected readonly phase = 'cutover' as const;

  protected question(): string {
    return 'Make the hybrid the default backend?';
  }

  async run() {
    return this.runPhaseCommand({ acceptChanges: this.flags['accept-changes'], nodes: this.flags.node });
  }
}
