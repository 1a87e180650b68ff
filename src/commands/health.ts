import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { pause } from '../cli/cancel.js';
import {
  checkAll,
  positiveDuration,
  type FailOn,
  type HealthSummary,
  renderHealth,
  resolveTargets,
} from '../cli/health.js';

export default class Health extends RegistryCommand<typeof Health> {
  static override summary = 'Check the health of a backend (or several): status, counts, dead share, backend fields.';
  static override description = `Status by the share of dead registrations (< 10 % healthy, < 30 % degraded, else unhealthy) plus backend-specific checks (SQLite WAL size, etcd members and alarms, node queue depth). The reasons for a status other than healthy are spelled out.

Exit codes: 0 healthy; 5 degraded or unhealthy (--fail-on unhealthy lets degraded pass); 6 unreachable (a backend that cannot be opened or does not answer within --timeout is never 0); 2 a bad URL or profile; 7 unauthorized. With several backends, the worst of them.

--watch 5s (or 5, seconds) re-checks every 5 seconds until Ctrl-C; the exit code is that of the last round. With --json, each round is one JSON line.`;
  static override examples = [
    '<%= config.bin %> health',
    '<%= config.bin %> health --json',
    '<%= config.bin %> health --backend sqlite:./registry.db --fail-on unhealthy',
    '<%= config.bin %> health --profiles dev,prod',
    '<%= config.bin %> health --watch 5s',
  ];
  static override flags = {
    watch: Flags.string({
      char: 'w',
      summary: 'Re-check at this interval until Ctrl-C (5s, 500ms, 1m; a bare number is seconds).',
    }),
    'fail-on': Flags.string({
      summary: 'The least bad status that fails (exit 5).',
      options: ['degraded', 'unhealthy'],
      default: 'degraded',
    }),
    timeout: Flags.string({
      summary: 'How long to wait for each backend before calling it unreachable (500ms, 10s, 1m).',
      default: '10s',
    }),
    backends: Flags.string({ summary: 'Check these backend URLs (comma-separated) instead of the selected one.' }),
    profiles: Flags.string({ summary: 'Check these config profiles (comma-separated).' }),
  };

  async run(): Promise<HealthSummary | undefined> {
    const f = this.flags;
    const targets = resolveTargets(f);
    const failOn = f['fail-on'] as FailOn;
    const s = RegistryCommand.session;
    // In the REPL, the selected backend is the warm one.
    const borrowed =
      s && !f.backend && !f.profile && !f['node-name'] && !f.backends && !f.profiles ? s.registry : undefined;
    const timeoutMs = positiveDuration(f.timeout);
    const everyMs = f.watch === undefined ? undefined : positiveDuration(f.watch, '--watch');
    const check = () => checkAll(targets, { failOn, timeoutMs, borrowed, nodeName: f['node-name'] });
    const c = await this.colors();
    if (everyMs === undefined) {
      const summary = await check();
      if (!this.jsonEnabled()) this.log(renderHealth(summary, c, this.view()));
      process.exitCode = summary.exitCode;
      return summary;
    }
    return this.watchLoop(everyMs, check, (summary) => {
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else {
        const clear = process.stdout.isTTY ? '\x1b[2J\x1b[H' : '';
        this.log(
          `${clear}${c.dim(`${summary.checkedAt} — every ${everyMs / 1000}s, Ctrl-C to stop`)}\n${renderHealth(summary, c, this.view())}`,
        );
      }
    });
  }

  /** Check, render, sleep `everyMs`; stop on SIGINT/SIGTERM or the REPL's abort signal. */
  private async watchLoop(
    everyMs: number,
    check: () => Promise<HealthSummary>,
    render: (s: HealthSummary) => void,
  ): Promise<undefined> {
    const stop = new AbortController();
    const session = RegistryCommand.session?.signal;
    const onSignal = () => stop.abort();
    session?.addEventListener('abort', onSignal, { once: true });
    // In the REPL, Ctrl-C is the session's abort signal; the process signals stay the REPL's.
    const own = !RegistryCommand.session;
    if (own) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    try {
      while (!stop.signal.aborted && !session?.aborted) {
        const summary = await check();
        process.exitCode = summary.exitCode;
        render(summary);
        // pause removes its abort listener when it ends: a watch of many rounds
        // keeps one listener, not one per round.
        await pause(everyMs, stop.signal);
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      session?.removeEventListener('abort', onSignal);
    }
    // Rounds were written as they came; nothing more for oclif to print.
    return undefined;
  }
}
