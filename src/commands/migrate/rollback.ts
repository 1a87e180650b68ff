import { MigrateCommand, phaseFlags } from '../../cli/migrate-command.js';
import { phases, rollback, status } from '../../migrations/index.js';

export default class MigrateRollback extends MigrateCommand<typeof MigrateRollback> {
  static override summary = 'Return to the previous phase (while the old store exists).';
  static override description =
    'Undoes the furthest done phase (or abandons an interrupted one): restores the previous default profile and removes the profiles it wrote. Rolling back optimize or distribute first copies writes made since then back into the store being returned to.';
  static override examples = [
    '<%= config.bin %> migrate rollback --yes',
    '<%= config.bin %> migrate rollback --dry-run',
  ];
  static override flags = { ...phaseFlags };

  async run() {
    const m = this.migration();
    const s = status(m);
    const target = s.interrupted?.phase ?? s.current;
    if (this.flags['dry-run']) {
      const plan = {
        phase: target,
        steps: target ? [`undo phase ${target}: ${phases[target].summary}`] : ['nothing to roll back'],
      };
      if (!this.jsonEnabled()) plan.steps.forEach((x) => this.log(x));
      return { dryRun: true, plan };
    }
    await this.confirm(`Roll back phase ${target ?? '(none)'}?`, this.flags.yes);
    const r = await rollback(m);
    this.printResult(r);
    return r;
  }
}
