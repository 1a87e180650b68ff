import { RegistryCommand } from '../../cli/base.js';
import { findConfig, loadConfig, type Profile } from '../../cli/config.js';
import { renderTable } from '../../cli/output.js';

interface ViewResult {
  path: string | null;
  default: string | null;
  profiles: Record<string, Profile>;
  effective: { backend: string; source: string };
}

/** `registry config view`: the config file this directory uses, its profiles, and the backend in effect. */
export default class ConfigView extends RegistryCommand<typeof ConfigView> {
  static override summary = 'Show the config file in effect, its profiles and which backend commands use.';
  static override description =
    'Reads registry.config.json here or above (else $XDG_CONFIG_HOME/registry/config.json, or --config). ' +
    'The CURRENT column marks the default profile. Changes nothing.';
  static override examples = [
    '<%= config.bin %> config view',
    '<%= config.bin %> config view --json',
    '<%= config.bin %> config view --config ./ci.config.json',
  ];

  async run(): Promise<ViewResult> {
    const path = findConfig(this.flags.config) ?? null;
    const cfg = path ? loadConfig(path) : {};
    const r = this.resolved();
    const profiles = cfg.profiles ?? {};
    const result: ViewResult = {
      path,
      default: cfg.default ?? null,
      profiles,
      effective: { backend: r.backend, source: r.source },
    };
    if (this.jsonEnabled()) return result;
    if (!path) {
      this.note(
        'no config file here or above, nor in $XDG_CONFIG_HOME/registry: create one with `registry config init`',
      );
    } else {
      // Piped, stdout holds the table rows alone (as `backends`); the file and the backend are notes then.
      this.say(`config: ${path}`);
      const names = Object.keys(profiles).sort();
      if (names.length === 0) this.note('no profiles: add one with `registry config set-profile NAME --backend URL`');
      else
        this.log(
          renderTable(
            {
              columns: [
                { header: 'CURRENT' },
                { header: 'NAME' },
                { header: 'BACKEND', flex: true },
                { header: 'OPTIONS', flex: true },
                { header: 'NAMESPACE' },
                { header: 'NODE' },
              ],
              rows: names.map((n) => {
                const p = profiles[n] ?? { backend: '' };
                const opts = Object.entries(p.backendOpts ?? {})
                  .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
                  .join(',');
                return [n === cfg.default ? '*' : '', n, p.backend, opts || '-', p.namespace ?? '-', p.node ?? '-'];
              }),
              names,
            },
            this.view(),
          ),
        );
    }
    this.say(`backend: ${r.backend} (from ${r.source})`);
    return result;
  }

  private say(line: string): void {
    if (process.stdout.isTTY && this.format() !== 'name') this.log(line);
    else this.note(line);
  }
}
