import { Args, Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { InvalidInputError } from '../backends/contract.js';
import type { ImportFormat, ImportProgress, ImportResult } from '../registry/import.js';

export default class Import extends RegistryCommand<typeof Import> {
  static override summary = 'Register many entries from NDJSON or CSV, in file order.';
  static override description =
    'NDJSON: one entry per line ({"key":…,"pid":…} plus optional namespace, node, meta, pidStart, registeredAt, updatedAt). CSV (--format csv): a header row naming key, pid and optionally node, namespace and meta.FIELD columns. Each entry is registered by register\'s rule: a key held by another live process is refused. A line that cannot be written stops the import (exit 2, or 4 for a held key) after the lines before it; --skip-invalid writes the others and lists the skipped lines; --atomic writes all or nothing.';
  static override examples = [
    '<%= config.bin %> import entries.ndjson',
    '<%= config.bin %> import hosts.csv --format csv -n prod',
    '<%= config.bin %> import entries.ndjson --atomic',
    'cat entries.ndjson | <%= config.bin %> import - --skip-invalid --json',
  ];
  static override args = { file: Args.string({ description: 'the file to import ("-" for stdin)', required: true }) };
  static override flags = {
    format: Flags.string({ summary: 'Input format.', options: ['ndjson', 'csv'], default: 'ndjson' }),
    atomic: Flags.boolean({
      summary: 'All or nothing: check every line first, then write them all at once (or nothing, exit 2/4).',
      exclusive: ['skip-invalid'],
    }),
    'skip-invalid': Flags.boolean({
      summary: 'Go on past lines that cannot be written; list them (line and reason) at the end.',
    }),
    'batch-size': Flags.integer({ summary: 'Entries per write (default 5000).', min: 1, max: 100_000 }),
  };

  async run(): Promise<ImportResult> {
    const { importEntries } = await import('../registry/import.js');
    const file = this.args.file;
    if (file === '-' && process.stdin.isTTY)
      throw new InvalidInputError(
        'import - reads entries from stdin, which is a terminal: pipe a file in, or give its path',
      );
    const reg = await this.registry();
    const bar = await this.progressBar();
    let r: ImportResult;
    try {
      r = await importEntries(reg, file, {
        format: this.flags.format as ImportFormat,
        atomic: this.flags.atomic,
        skipInvalid: this.flags['skip-invalid'],
        namespace: this.ns,
        batchSize: this.flags['batch-size'],
        onProgress: bar?.update,
      });
    } finally {
      bar?.stop();
    }
    if (!this.jsonEnabled()) {
      for (const s of r.skipped) this.note(`skipped line ${s.line}: ${s.reason}`);
      this.log(
        `imported ${r.written} of ${r.lines} entries${r.skipped.length ? ` (${r.skipped.length} skipped)` : ''}${r.mode === 'atomic' ? ` all at once (${r.method === 'transaction' ? 'one transaction' : 'staged'})` : ''}`,
      );
    }
    return r;
  }

  /** A progress bar on stderr when it is a terminal (nothing when piped or with --json). */
  private async progressBar(): Promise<{ update: (p: ImportProgress) => void; stop: () => void } | undefined> {
    if (!process.stderr.isTTY || this.jsonEnabled()) return undefined;
    const { SingleBar, Presets } = await import('cli-progress');
    let started = false;
    const bar = new SingleBar(
      {
        stream: process.stderr,
        format: '{phase} [{bar}] {percentage}% | {lines} lines, {written} written',
        hideCursor: true,
        clearOnComplete: true,
        noTTYOutput: false,
      },
      Presets.shades_classic,
    );
    return {
      update: (p) => {
        const total = p.totalBytes ?? Math.max(p.bytes, 1);
        const payload = { phase: p.phase, lines: p.lines, written: p.written };
        if (!started) {
          bar.start(total, p.bytes, payload);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(p.bytes, payload);
        }
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
}
