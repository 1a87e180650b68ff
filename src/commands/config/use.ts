import { Args } from '@oclif/core';
import { InvalidInputError } from '../../backends/contract.js';
import { RegistryCommand } from '../../cli/base.js';
import { configTarget, loadConfig, saveConfig } from '../../cli/config.js';
import { existsSync } from 'node:fs';

/** `registry config use PROFILE`: make a profile the default. */
export default class ConfigUse extends RegistryCommand<typeof ConfigUse> {
  static override summary = 'Make PROFILE the default profile of the config file.';
  static override examples = ['<%= config.bin %> config use prod', '<%= config.bin %> config use dev --json'];
  static override args = { profile: Args.string({ required: true, description: 'profile name' }) };

  async run(): Promise<{ path: string; default: string; previous: string | null; backend: string }> {
    const path = configTarget(this.flags.config);
    if (!existsSync(path))
      throw new InvalidInputError(
        `no config file at ${path}: create one with \`registry config init\` or \`registry config set-profile NAME --backend URL\``,
      );
    const cfg = loadConfig(path);
    const name = this.args.profile;
    const p = cfg.profiles?.[name];
    if (!p) {
      const known = Object.keys(cfg.profiles ?? {});
      throw new InvalidInputError(
        `no profile "${name}" in ${path}: ${known.length ? `known profiles are ${known.join(', ')}` : 'it has no profiles'}; add one with \`registry config set-profile ${name} --backend URL\``,
      );
    }
    const previous = cfg.default ?? null;
    saveConfig(path, { ...cfg, default: name });
    this.log(`default profile is now "${name}" (${p.backend}) in ${path}`);
    return { path, default: name, previous, backend: p.backend };
  }
}
