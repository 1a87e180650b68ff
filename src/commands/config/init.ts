import { Flags } from '@oclif/core';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidInputError } from '../../backends/contract.js';
import { RegistryCommand } from '../../cli/base.js';
import { checkProfileName, profileBackend, saveConfig, userConfigPath, type ConfigFile } from '../../cli/config.js';

/** `registry config init`: write a config file with one profile, the backend in use now. */
export default class ConfigInit extends RegistryCommand<typeof ConfigInit> {
  static override summary = 'Create a config file with one default profile.';
  static override description =
    'The profile points at --backend, else at the backend commands use here now (a profile, REGISTRY_BACKEND ' +
    'or the SQLite default), so creating the file changes no answer. Writes ./registry.config.json, or the user-wide ' +
    '$XDG_CONFIG_HOME/registry/config.json with --global, or --config FILE. Refuses to overwrite without --force.';
  static override examples = [
    '<%= config.bin %> config init',
    '<%= config.bin %> config init --profile-name prod --backend etcd://127.0.0.1:2379/registry',
    '<%= config.bin %> config init --global',
  ];
  static override flags = {
    backend: Flags.string({ char: 'b', summary: "The profile's backend URL (default: the one in use now)." }),
    'profile-name': Flags.string({ summary: 'Name of the profile (default: dev).', default: 'dev' }),
    global: Flags.boolean({ summary: 'Write $XDG_CONFIG_HOME/registry/config.json.', exclusive: ['config'] }),
    force: Flags.boolean({ summary: 'Overwrite an existing file.' }),
  };

  async run(): Promise<{ path: string; config: ConfigFile }> {
    const name = checkProfileName(this.flags['profile-name']);
    const path = this.flags.config
      ? resolve(this.flags.config)
      : this.flags.global
        ? userConfigPath()
        : resolve('registry.config.json');
    if (existsSync(path) && !this.flags.force)
      throw new InvalidInputError(
        `${path} already exists: change it with \`registry config set-profile\` / \`registry config use\`, or pass --force to replace it`,
      );
    const backend = this.resolved().backend;
    const config: ConfigFile = { default: name, profiles: { [name]: { backend: profileBackend(backend, path) } } };
    saveConfig(path, config);
    this.log(`wrote ${path}: profile "${name}" (${config.profiles?.[name]?.backend}) is the default`);
    return { path, config };
  }
}
