import { Flags } from '@oclif/core';
import { writeFileSync } from 'node:fs';
import { InvalidInputError } from '../backends/contract.js';
import { RegistryCommand } from '../cli/base.js';
import {
  checkAll,
  positiveDuration,
  type FailOn,
  type HealthSummary,
  renderReport,
  resolveTargets,
} from '../cli/health.js';

export default class Report extends RegistryCommand<typeof Report> {
  static override summary = 'One health report across several backends or profiles, side by side.';
  static override description = `Checks each backend named by --profiles or --backends (default: every profile of the config file, else the selected backend) and prints them as columns of one table, every reason spelled out below it; --json (or --output FILE) gives the same data for a CI artifact.

Exit code: the worst of them (see \`registry health\`): 0 all healthy, 5 one is degraded or unhealthy, 6 one is unreachable.`;
  static override examples = [
    '<%= config.bin %> report',
    '<%= config.bin %> report --profiles dev,staging,prod',
    '<%= config.bin %> report --backends sqlite:./a.db,http://127.0.0.1:7070 --json > health.json',
    '<%= config.bin %> report --output artifacts/registry-health.json',
  ];
  static override flags = {
    profiles: Flags.string({ summary: 'Config profiles to report on (comma-separated).' }),
    backends: Flags.string({ summary: 'Backend URLs to report on (comma-separated).' }),
    'fail-on': Flags.string({
      summary: 'The least bad status that fails (exit 5).',
      options: ['degraded', 'unhealthy'],
      default: 'degraded',
    }),
    timeout: Flags.string({
      summary: 'How long to wait for each backend before calling it unreachable (500ms, 10s, 1m).',
      default: '10s',
    }),
    output: Flags.string({ char: 'o', summary: 'Also write the JSON report to this file.' }),
  };

  async run(): Promise<HealthSummary> {
    const f = this.flags;
    const targets = resolveTargets(f, { allProfiles: true });
    const summary = await checkAll(targets, {
      failOn: f['fail-on'] as FailOn,
      timeoutMs: positiveDuration(f.timeout),
      nodeName: f['node-name'],
    });
    if (f.output) {
      try {
        writeFileSync(f.output, `${JSON.stringify(summary, null, 2)}\n`);
      } catch (cause) {
        throw new InvalidInputError(
          `cannot write the report to ${f.output} (${(cause as Error).message}): check --output`,
          { cause },
        );
      }
    }
    if (!this.jsonEnabled()) this.log(renderReport(summary, await this.colors(), this.view()));
    process.exitCode = summary.exitCode;
    return summary;
  }
}
