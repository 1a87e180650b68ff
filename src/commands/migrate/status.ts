import { Flags } from '@oclif/core';
import { MigrateCommand, journalFlag } from '../../cli/migrate-command.js';
import { DifferentError, phases, status, type PhaseResult } from '../../migrations/index.js';
import { isoTime, itemLines, table } from '../../cli/output.js';
import { label } from '../../cli/health.js';

export default class MigrateStatus extends MigrateCommand<typeof MigrateStatus> {
  static override readOnly = true;
  static override summary = 'Show where the migration stands (from its journal).';
  static override examples = [
    '<%= config.bin %> migrate status',
    '<%= config.bin %> migrate status --journal ./registry.migration.json --json',
  ];
  static override flags = {
    ...journalFlag,
    check: Flags.boolean({ summary: "Re-run every done phase's proof now (verify each phase); exit 5 if one fails." }),
  };

  async run() {
    const m = this.migration();
    const s = status(m);
    let checks: PhaseResult[] | undefined;
    if (this.flags.check) {
      checks = [];
      try {
        for (const p of s.phases) if (p.status === 'done') checks.push(await phases[p.phase].verify(m));
      } finally {
        await m.close();
      }
    }
    if (!this.jsonEnabled()) {
      if (!s.started) {
        this.log(`no migration yet (journal ${s.journal}): start with \`registry migrate wrap --from URL\``);
        return s;
      }
      this.log(`journal: ${s.journal}\nconfig:  ${s.config} (default profile: ${s.defaultProfile ?? '(none)'})`);
      this.log(`stores:  source ${s.source ?? '-'}, target ${s.target ?? '-'}, distributed ${s.distributed ?? '-'}`);
      this.log(
        `at:      ${s.current ?? 'not started'}${s.interrupted ? ` (phase ${s.interrupted.phase} interrupted${s.interrupted.cursor ? ` after ${s.interrupted.cursor.copied} entries` : ''}: rerun it to resume)` : ''}; next: ${s.next ?? 'done'}`,
      );
      if (s.lock) this.log(`lock:    held by pid ${s.lock.pid} on ${s.lock.host} (${s.lock.command})`);
      const view = this.view();
      this.log(
        table(
          ['PHASE', 'STATUS', 'STARTED', 'FINISHED'],
          s.phases.map((p) => [p.phase, p.status, isoTime(p.startedAt), isoTime(p.finishedAt)]),
          view,
        ),
      );
      // Counts are lines of their own under the table (a 200-column cell otherwise), in words.
      const counts = s.phases
        .map((p): [string, string[]] => [
          p.phase,
          Object.entries(p.counts ?? {})
            .filter(([k]) => !k.includes(':'))
            .map(([k, v]) => `${label(k)} ${v}`),
        ])
        .filter(([, items]) => items.length > 0);
      if (counts.length && !view.name) this.log(`counts:\n${itemLines(counts, view)}`);
      for (const c of checks ?? []) this.log(`check ${c.phase}: ${c.notes.join('; ')}`);
    }
    const failed = (checks ?? []).filter((c) => c.verify && !c.verify.equivalent);
    if (failed.length)
      throw new DifferentError(
        `phase proof failed now: ${failed.map((c) => c.phase).join(', ')}`,
        this.jsonEnabled() ? { status: s, checks } : undefined,
      );
    return checks ? { ...s, checks } : s;
  }
}
