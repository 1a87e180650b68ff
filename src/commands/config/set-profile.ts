import { Args, Flags } from '@oclif/core';
import { existsSync } from 'node:fs';
import { InvalidInputError } from '../../backends/contract.js';
import { RegistryCommand } from '../../cli/base.js';
import {
  checkProfileName,
  configTarget,
  loadConfig,
  parseOpts,
  profileBackend,
  saveConfig,
  type ConfigFile,
  type Profile,
} from '../../cli/config.js';

/** `registry config set-profile NAME --backend URL [--opt k=v]…`: add or change a profile. */
export default class ConfigSetProfile extends RegistryCommand<typeof ConfigSetProfile> {
  static override summary = 'Add a profile, or change the fields of one, in the config file.';
  static override description =
    'Creates the config file (registry.config.json in this directory, or --config FILE) when there is none. ' +
    'Fields not given keep their value. --opt key=value sets a backend option (a JSON value when it parses, ' +
    'else a string); --opt key=null removes it. A relative sqlite: path is taken from this directory.';
  static override examples = [
    '<%= config.bin %> config set-profile dev --backend sqlite:./registry.db',
    '<%= config.bin %> config set-profile prod --backend etcd://127.0.0.1:2379/registry --opt leaseTtl=10',
    '<%= config.bin %> config set-profile prod --opt leaseTtl=null',
  ];
  static override args = { name: Args.string({ required: true, description: 'profile name' }) };
  static override flags = {
    backend: Flags.string({ char: 'b', summary: "The profile's backend URL (required for a new profile)." }),
    opt: Flags.string({ summary: 'Backend option key=value (repeatable).', multiple: true }),
    namespace: Flags.string({ char: 'n', summary: "The profile's default namespace." }),
    'node-name': Flags.string({ summary: "The node name the profile's commands use." }),
    default: Flags.boolean({ summary: 'Also make it the default profile.' }),
  };

  async run(): Promise<{ path: string; name: string; profile: Profile; created: boolean; default: string | null }> {
    const name = checkProfileName(this.args.name);
    const path = configTarget(this.flags.config);
    const exists = existsSync(path);
    const cfg: ConfigFile = exists ? loadConfig(path) : {};
    const old = cfg.profiles?.[name];
    const backend = this.flags.backend ?? old?.backend;
    if (backend === undefined)
      throw new InvalidInputError(`profile "${name}" is new: give its backend, e.g. --backend sqlite:./registry.db`);
    const opts: Record<string, unknown> = { ...(old?.backendOpts ?? {}) };
    for (const [k, v] of Object.entries(parseOpts(this.flags.opt ?? []))) {
      if (v === null) delete opts[k];
      else opts[k] = v;
    }
    const profile: Profile = {
      backend: this.flags.backend !== undefined ? profileBackend(this.flags.backend, path) : backend,
      ...(Object.keys(opts).length ? { backendOpts: opts } : {}),
      ...((this.flags.namespace ?? old?.namespace) !== undefined
        ? { namespace: this.flags.namespace ?? old?.namespace }
        : {}),
      ...((this.flags['node-name'] ?? old?.node) !== undefined ? { node: this.flags['node-name'] ?? old?.node } : {}),
    };
    const next: ConfigFile = { ...cfg, profiles: { ...(cfg.profiles ?? {}), [name]: profile } };
    if (this.flags.default) next.default = name;
    saveConfig(path, next);
    this.log(
      `${old ? 'updated' : 'added'} profile "${name}" (${profile.backend})${this.flags.default ? ', now the default,' : ''} in ${path}${exists ? '' : ' (created)'}`,
    );
    return { path, name, profile, created: !exists, default: next.default ?? null };
  }
}
