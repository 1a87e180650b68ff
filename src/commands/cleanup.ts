import { RegistryCommand } from '../cli/base.js';
import type { SweepResult } from '../backends/contract.js';
import { fmtMs } from '../cli/health.js';

export default class Cleanup extends RegistryCommand<typeof Cleanup> {
  static override summary = 'Remove registrations of dead local processes now.';
  static override description =
    'The sweep a long-lived process runs every cleanupInterval, on demand. Registrations of other nodes are left to their node.';
  static override examples = ['<%= config.bin %> cleanup', '<%= config.bin %> cleanup --json'];

  async run(): Promise<SweepResult> {
    const r = await (await this.registry()).cleanup();
    if (!this.jsonEnabled())
      this.log(
        `removed ${r.removed} dead registration${r.removed === 1 ? '' : 's'} (${r.checked} checked, ${fmtMs(r.durationMs)})`,
      );
    return r;
  }
}
