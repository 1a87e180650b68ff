import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { dump, type DumpResult } from '../registry/dump.js';
import { InvalidInputError } from '../backends/contract.js';

export default class Dump extends RegistryCommand<typeof Dump> {
  static override readOnly = true;
  static override summary =
    'Write live registrations as NDJSON (header with count and digest, then one entry per line).';
  static override description =
    'Entries are sorted by namespace, then key. The header carries the entry count and an order-independent digest, which `registry restore` checks. Default: every namespace, to stdout.';
  static override examples = [
    '<%= config.bin %> dump > registry.ndjson',
    '<%= config.bin %> dump -o backup.ndjson -n prod',
    '<%= config.bin %> dump -b etcd://127.0.0.1:2379 | gzip > etcd.ndjson.gz',
  ];
  static override flags = {
    output: Flags.string({ char: 'o', summary: 'Write to this file instead of stdout.' }),
  };

  // With --json the dump itself still goes to the file or stdout; the summary is the JSON result.
  async run(): Promise<DumpResult & { output: string }> {
    const reg = await this.registry();
    await reg.assertIntact(); // a damaged file never yields a valid-looking backup
    const only = (this.flags as { namespace?: string }).namespace;
    const namespaces = only ? [only] : undefined;
    if (this.jsonEnabled() && !this.flags.output) {
      throw new InvalidInputError('--json with a dump to stdout would mix the two: pass --output FILE');
    }
    const r = await dump(reg, { namespaces, out: this.flags.output ?? process.stdout });
    if (this.flags.output)
      this.note(`dumped ${r.count} registrations to ${this.flags.output} (digest ${r.digest.slice(0, 16)}…)`);
    return { ...r, output: this.flags.output ?? '-' };
  }
}
