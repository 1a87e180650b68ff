import { RegistryCommand } from '../cli/base.js';
import { schemes } from '../backends/open.js';
import { table } from '../cli/output.js';

export default class Backends extends RegistryCommand<typeof Backends> {
  static override summary = 'List the backend URL schemes and which one this command would use.';
  static override examples = ['<%= config.bin %> backends', '<%= config.bin %> backends --json'];

  async run(): Promise<{
    current: { backend: string; source: string };
    schemes: Array<{ scheme: string; form: string; description: string }>;
  }> {
    const r = this.resolved();
    const list = schemes.map(({ scheme, form, description }) => ({ scheme, form, description }));
    if (!this.jsonEnabled()) {
      this.log(
        table(
          ['SCHEME', 'URL', 'DESCRIPTION'],
          list.map((s) => [s.scheme, s.form, s.description]),
          { color: this.color },
        ),
      );
      this.log(`current: ${r.backend} (from ${r.source})`);
    }
    return { current: { backend: r.backend, source: r.source }, schemes: list };
  }
}
