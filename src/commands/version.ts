import { Command, Flags } from '@oclif/core';

/** `registry version`: the same answer as `registry --version`, or JSON. */
export default class Version extends Command {
  static override description = 'print the version of procreg, Node.js and the platform';
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json'];
  static override flags = { json: Flags.boolean({ description: 'print JSON' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(Version);
    const c = this.config;
    if (flags.json) {
      const v = { name: c.name, version: c.version, node: process.versions.node, platform: `${c.platform}-${c.arch}` };
      process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
    } else {
      process.stdout.write(`${c.userAgent}\n`);
    }
  }
}
