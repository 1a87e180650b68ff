import { RegistryCommand } from '../../cli/base.js';
import { findConfig, loadConfig, type Profile } from '../../cli/config.js';
import { table } from '../../cli/output.js';

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
      this.log(`config: ${path}`);
      const names = Object.keys(profiles).sort();
      if (names.length === 0) this.log('no profiles: add one with `registry config set-profile NAME --backend URL`');
      else
        this.log(
          table(
            ['CURRENT', 'NAME', 'BACKEND', 'OPTIONS', 'NAMESPACE', 'NODE'],
            names.map((n) => {
              const p = profiles[n] ?? { backend: '' };
              const opts = Object.entries(p.backendOpts ?? {})
                .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
                .join(' ');
              return [n === cfg.default ? '*' : '', n, p.backend, opts || '-', p.namespace ?? '-', p.node ?? '-'];
            }),
            { color: this.color },
          ),
        );
    }
    this.log(`backend: ${r.backend} (from ${r.source})`);
    return result;
  }
}
