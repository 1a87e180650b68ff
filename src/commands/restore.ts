import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { restore, type RestoreResult } from '../registry/dump.js';
import { confirmOrRefuse } from '../cli/prompt.js';
import type { RestoreApplied } from '../backends/contract.js';

export default class Restore extends RegistryCommand<typeof Restore> {
  static override summary = 'Load a dump made by `registry dump` (all or nothing).';
  static override description =
    "merge (default): the dump's entries are written over what is there; other keys stay. replace: the store ends up holding exactly the dump. A malformed line, a wrong count or digest writes nothing (exit 2).";
  static override examples = [
    '<%= config.bin %> restore registry.ndjson',
    '<%= config.bin %> restore backup.ndjson --mode replace --yes',
    'cat dump.ndjson | <%= config.bin %> restore -',
  ];
  static override args = { file: Args.string({ description: 'the dump file ("-" for stdin)', required: true }) };
  static override flags = {
    mode: Flags.string({ summary: 'merge or replace.', options: ['merge', 'replace'], default: 'merge' }),
    yes: Flags.boolean({ char: 'y', summary: 'Do not ask before --mode replace.' }),
  };

  async run(): Promise<RestoreResult & { recovered?: RestoreApplied['recovered'] }> {
    const mode = this.flags.mode as 'merge' | 'replace';
    const reg = await this.registry();
    if (mode === 'replace') {
      await confirmOrRefuse({
        message: `Replace everything in ${reg.backend.url} with ${this.args.file}?`,
        yes: this.flags.yes,
        consequence: '--mode replace removes every registration not in the dump',
        action: 'restore',
        stdinInUse: this.args.file === '-',
        signal: RegistryCommand.session?.signal,
      });
    }
    const r = await restore(reg, this.args.file, { mode, onProgress: (n) => this.progress(n) });
    if (process.stderr.isTTY && !this.jsonEnabled()) process.stderr.write('\r\x1b[K');
    const rec = r.recovered;
    if (rec)
      this.note(
        rec.action === 'completed'
          ? `an interrupted restore ${rec.id} (${rec.mode}, ${rec.count} entries) had passed its commit point: it was completed first`
          : `an interrupted restore ${rec.id} (${rec.mode}, ${rec.count} entries) had not reached its commit point: it was discarded, nothing of it was applied`,
      );
    if (!this.jsonEnabled())
      this.log(
        `restored ${r.restored} registrations (${mode}${mode === 'replace' ? `, ${r.cleared} removed first` : ''})`,
      );
    return r;
  }

  private progress(n: number): void {
    if (process.stderr.isTTY && !this.jsonEnabled()) process.stderr.write(`\r\x1b[Krestoring… ${n} lines`);
  }
}
