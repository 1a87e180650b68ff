import { RegistryCommand } from '../cli/base.js';
import { schemes } from '../backends/open.js';
import { renderTable } from '../cli/output.js';

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
        renderTable(
          {
            columns: [{ header: 'SCHEME' }, { header: 'URL' }, { header: 'DESCRIPTION', flex: true }],
            rows: list.map((s) => [s.scheme, s.form, s.description]),
          },
          this.view(),
        ),
      );
      // Piped or -o name, stdout holds the table rows alone; which backend is current is a note then.
      const current = `current: ${r.backend} (from ${r.source})`;
      if (process.stdout.isTTY && this.format() !== 'name') this.log(current);
      else this.note(current);
    }
    return { current: { backend: r.backend, source: r.source }, schemes: list };
  }
}
