import { Args, Flags } from '@oclif/core';
import { MigrateCommand, formatVerify } from '../cli/migrate-command.js';
import { DifferentError, Migration, verifyStates, type VerifyReport } from '../migrations/index.js';

export default class Verify extends MigrateCommand<typeof Verify> {
  static override summary =
    'Prove two stores hold equivalent registrations (exit 0), or list how they differ (exit 5).';
  static override description =
    'Equivalent: the same (namespace, key) set with the same pid, node and metadata (canonical JSON); timestamps too with --strict. Per-bucket digests are computed where the data lives (a SQLite file scans itself, a registry node computes its own), so equal states move only digests; mismatching buckets are narrowed to the keys, reported as only in A, only in B, and differing field by field.';
  static override examples = [
    '<%= config.bin %> verify legacy:./old.db sqlite:./registry.db',
    '<%= config.bin %> verify sqlite:./registry.db etcd://127.0.0.1:2379/registry --all-namespaces --json',
    '<%= config.bin %> verify sqlite:./a.db http://127.0.0.1:7070 -n jobs --strict --max-diffs 10',
  ];
  static override args = {
    a: Args.string({ description: 'store A (URL)', required: true }),
    b: Args.string({ description: 'store B (URL)', required: true }),
  };
  static override flags = {
    'all-namespaces': Flags.boolean({
      char: 'A',
      summary: 'Compare every namespace of either store (the default without --namespace).',
      exclusive: ['namespace'],
    }),
    strict: Flags.boolean({ summary: 'Compare timestamps (registeredAt, updatedAt) too.' }),
    'max-diffs': Flags.integer({
      summary: 'List at most N differences of each kind (totals stay exact).',
      default: 100,
      min: 0,
    }),
    buckets: Flags.integer({
      summary: 'Digest buckets per namespace (default: by size, 16..4096).',
      min: 1,
      max: 65536,
    }),
  };

  async run(): Promise<VerifyReport> {
    // create: false: a mistyped path is exit 6, never a new empty store that "matches" another.
    const m = new Migration({
      nodeName: this.flags['node-name'],
      create: false,
      onProgress: (l, d, t) => this.progress(l, d, t),
    });
    try {
      const a = await m.open(this.args.a);
      const b = await m.open(this.args.b);
      const only = (this.flags as { namespace?: string }).namespace;
      const report = await verifyStates(a.registry, b.registry, {
        namespaces: only ? [only] : undefined,
        strict: this.flags.strict,
        maxDiffs: this.flags['max-diffs'],
        buckets: this.flags.buckets,
        onProgress: (n) => this.progress('verify: narrowing', n),
      });
      this.stopProgress();
      if (!this.jsonEnabled()) this.log(formatVerify(report));
      if (!report.equivalent) {
        throw new DifferentError(
          `the stores differ: ${report.totals.onlyInA} only in A, ${report.totals.onlyInB} only in B, ${report.totals.differing} differing`,
          this.jsonEnabled() ? { report } : undefined,
        );
      }
      return report;
    } finally {
      await m.close();
    }
  }
}
