import { Flags } from '@oclif/core';
import { PhaseCommand } from '../../cli/phase-command.js';
import { phaseFlags } from '../../cli/migrate-command.js';
import type { PhaseArgs } from '../../migrations/phase.js';

export default class MigrateWrap extends PhaseCommand<typeof MigrateWrap> {
  static override summary = 'Phase 1: put the registry service in front of the existing store (nothing moves).';
  static override description =
    'Records a baseline digest per namespace in the journal, proves that the digest through the service equals the digest of the raw stored view, and reports legacy anomalies (keys whose tables disagree, dead rows, stale index and cache rows). Writes profile migrate-source and makes it the default.';
  static override examples = [
    '<%= config.bin %> migrate wrap --from legacy:./old-registry.db --yes',
    '<%= config.bin %> migrate wrap --from legacy:./old-registry.db --dry-run --json',
  ];
  static override flags = {
    ...phaseFlags,
    from: Flags.string({ summary: 'The store to migrate (e.g. legacy:./old.db).' }),
  };
  protected readonly phase = 'wrap' as const;

  protected question(a: PhaseArgs): string {
    return `Wrap ${a.from ?? "the journal's source"} and make it the default profile?`;
  }

  async run() {
    return this.runPhaseCommand({ from: this.flags.from });
  }
}
