/** The shape shared by the five phase commands: dry run → plan; else confirm, run, print. */
import type { Command } from '@oclif/core';
import { MigrateCommand } from './migrate-command.js';
import { phases, runPhase, type PhaseName, type PhaseResult, type Plan } from '../migrations/index.js';
import type { PhaseArgs } from '../migrations/phase.js';

export abstract class PhaseCommand<T extends typeof Command> extends MigrateCommand<T> {
  protected abstract readonly phase: PhaseName;

  /** The question asked before the phase changes anything. */
  protected abstract question(args: PhaseArgs): string;

  protected async runPhaseCommand(args: PhaseArgs): Promise<PhaseResult | { dryRun: true; plan: Plan }> {
    const f = this.flags as { 'dry-run'?: boolean; yes?: boolean; batch?: number };
    const m = this.migration({ create: !f['dry-run'] }); // a dry run creates nothing
    const phase = phases[this.phase];
    if (f['dry-run']) {
      try {
        const plan = await phase.plan(m, args);
        this.printPlan(plan);
        return { dryRun: true, plan };
      } finally {
        await m.close();
      }
    }
    await this.confirm(this.question(args), f.yes);
    try {
      const r = await runPhase(m, phase, args, { batch: f.batch });
      this.printResult(r);
      return r;
    } finally {
      this.stopProgress();
    }
  }
}
