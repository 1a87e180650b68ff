import { Flags } from '@oclif/core';
import { MigrateCommand, formatVerify } from '../../cli/migrate-command.js';
import { InvalidInputError } from '../../backends/contract.js';
import { copyState, DifferentError, Migration, verifyStates } from '../../migrations/index.js';

export default class MigrateCopy extends MigrateCommand<typeof MigrateCopy> {
  static override summary = 'Copy every live registration from one store into another (any pair), then verify.';
  static override description =
    "Streams page by page (bounded memory) and writes in batches with the target's bulk path; the source wins over what the target held for the same keys. Exit 5 if the target does not verify equal afterwards (writes racing the copy).";
  static override examples = [
    '<%= config.bin %> migrate copy --from sqlite:./a.db --to sqlite:./b.db',
    '<%= config.bin %> migrate copy --from legacy:./old.db --to etcd://127.0.0.1:2379 -n jobs --json',
  ];
  static override flags = {
    from: Flags.string({ summary: 'Source store URL.', required: true }),
    to: Flags.string({ summary: 'Target store URL.', required: true }),
    batch: Flags.integer({ summary: 'Entries per write batch.', default: 2000, min: 1 }),
    'no-verify': Flags.boolean({ summary: 'Skip the verify after the copy.' }),
    'dry-run': Flags.boolean({ summary: 'Count what would be copied; write nothing.' }),
  };

  async run() {
    const f = this.flags;
    if (f.from === f.to) throw new InvalidInputError('--from and --to name the same store: nothing to copy');
    const m = new Migration({ nodeName: this.flags['node-name'], onProgress: (l, d, t) => this.progress(l, d, t) });
    try {
      const source = await m.open(f.from);
      const namespaces = this.ns ? [this.ns] : await source.registry.namespaces();
      if (f['dry-run']) {
        let n = 0;
        for (const ns of namespaces) n += await source.registry.storedCount(ns);
        if (!this.jsonEnabled())
          this.log(`would copy up to ${n} stored entries in ${namespaces.length} namespaces from ${f.from} to ${f.to}`);
        return { dryRun: true, namespaces, stored: n };
      }
      const target = await m.openTarget(f.to, '--to');
      const total = await source.registry.storedCount();
      const r = await copyState(source.registry, target.registry, {
        namespaces,
        batch: f.batch,
        onBatch: (c) => this.progress('copy', c.copied, total),
      });
      this.stopProgress();
      const verify = f['no-verify'] ? undefined : await verifyStates(source.registry, target.registry, { namespaces });
      if (!this.jsonEnabled())
        this.log(
          `copied ${r.copied} entries in ${r.namespaces.length} namespaces in ${r.durationMs} ms${verify ? `; ${verify.equivalent ? 'verified equal' : 'NOT equal'}` : ''}`,
        );
      if (verify && !verify.equivalent) {
        if (!this.jsonEnabled()) this.log(formatVerify(verify));
        throw new DifferentError(`${f.to} differs from ${f.from} after the copy: writes racing it? copy again`, {
          copy: r,
          verify,
        });
      }
      return { ...r, verify };
    } finally {
      await m.close();
    }
  }
}
