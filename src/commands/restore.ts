import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { restore, type RestoreResult } from '../registry/dump.js';
import { confirmOrRefuse } from '../cli/prompt.js';
import { InvalidInputError, type RestoreApplied } from '../backends/contract.js';

type Resumed = NonNullable<RestoreApplied['recovered']> | { action: 'none' };

export default class Restore extends RegistryCommand<typeof Restore> {
  static override summary = 'Load a dump made by `registry dump` (all or nothing).';
  static override description =
    "merge (default): the dump's entries are written over what is there; other keys stay. replace: the store ends up holding exactly the dump. A malformed line, a wrong count or digest writes nothing (exit 2).";
  static override examples = [
    '<%= config.bin %> restore registry.ndjson',
    '<%= config.bin %> restore backup.ndjson --mode replace --yes',
    '<%= config.bin %> restore --resume -b etcd://127.0.0.1:2379',
    'cat dump.ndjson | <%= config.bin %> restore -',
  ];
  static override args = { file: Args.string({ description: 'the dump file ("-" for stdin)' }) };
  static override flags = {
    mode: Flags.string({ summary: 'merge or replace.', options: ['merge', 'replace'], default: 'merge' }),
    yes: Flags.boolean({ char: 'y', summary: 'Do not ask before --mode replace.' }),
    resume: Flags.boolean({
      summary:
        'Settle a restore a killed process left part way (etcd): complete it if it passed its commit point, else discard it; say which.',
    }),
  };

  async run(): Promise<(RestoreResult & { recovered?: RestoreApplied['recovered'] }) | { resumed: Resumed }> {
    const mode = this.flags.mode as 'merge' | 'replace';
    if (this.flags.resume && this.args.file === undefined) return this.resume();
    const file = this.args.file;
    if (file === undefined)
      throw new InvalidInputError(
        'missing the dump file: registry restore FILE (or --resume to settle an interrupted restore)',
      );
    const reg = await this.registry();
    if (mode === 'replace') {
      await confirmOrRefuse({
        message: `Replace everything in ${reg.backend.url} with ${file}?`,
        yes: this.flags.yes,
        consequence: '--mode replace removes every registration not in the dump',
        action: 'restore',
        stdinInUse: file === '-',
        signal: RegistryCommand.session?.signal,
      });
    }
    const r = await restore(reg, file, { mode, onProgress: (n) => this.progress(n) });
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

  /** `--resume`: what an interrupted restore left, settled. */
  private async resume(): Promise<{ resumed: Resumed }> {
    const reg = await this.registry();
    const b = reg.backend;
    const rec = b.resumeRestore ? await b.resumeRestore() : undefined;
    const resumed: Resumed = rec ?? { action: 'none' };
    if (!this.jsonEnabled())
      this.log(
        !b.resumeRestore
          ? `${b.url}: a restore here is one transaction (or one commit on the node): it never stops part way, there is nothing to resume`
          : !rec
            ? `no interrupted restore on ${b.url}: the store holds what the last completed restore (or later writes) left`
            : rec.action === 'completed'
              ? `restore ${rec.id} (${rec.mode}, ${rec.count} entries) had passed its commit point: completed; the store now holds its dump (digest ${rec.digest?.slice(0, 16)}…)`
              : `restore ${rec.id} had not reached its commit point: its staged data was discarded; the store holds the state from before it`,
      );
    return { resumed };
  }

  private progress(n: number): void {
    if (process.stderr.isTTY && !this.jsonEnabled()) process.stderr.write(`\r\x1b[Krestoring… ${n} lines`);
  }
}
