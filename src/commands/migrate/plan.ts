import { Flags } from '@oclif/core';
import { MigrateCommand, journalFlag } from '../../cli/migrate-command.js';
import { phases, PHASES, status, type Plan } from '../../migrations/index.js';

export default class MigratePlan extends MigrateCommand<typeof MigratePlan> {
  static override readOnly = true;
  static override summary = 'Show the next phase in detail and the phases after it (changes nothing).';
  static override examples = [
    '<%= config.bin %> migrate plan --from legacy:./old.db',
    '<%= config.bin %> migrate plan --to sqlite:./registry.db --json',
  ];
  static override flags = {
    ...journalFlag,
    from: Flags.string({ summary: 'Source store, for planning wrap.' }),
    to: Flags.string({ summary: 'Target store, for planning hybrid or distribute.' }),
  };

  async run(): Promise<{ next: Plan | null; later: Array<{ phase: string; summary: string }> }> {
    const m = this.migration();
    try {
      const s = status(m);
      if (!s.next) {
        if (!this.jsonEnabled()) this.log('every phase is done: nothing left to plan');
        return { next: null, later: [] };
      }
      const plan = await phases[s.next].plan(m, { from: this.flags.from, to: this.flags.to });
      const later = PHASES.slice(PHASES.indexOf(s.next) + 1).map((p) => ({ phase: p, summary: phases[p].summary }));
      if (!this.jsonEnabled()) {
        this.printPlan(plan);
        for (const l of later) this.log(`then ${l.phase}: ${l.summary}`);
      }
      return { next: plan, later };
    } finally {
      await m.close();
    }
  }
}
