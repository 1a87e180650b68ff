/**
 * The base of `registry migrate *` and `registry verify`: journal/config flags, `--dry-run`,
 * `--yes` (never a prompt when stdin is not a TTY or CI is set), progress bars on stderr
 * (cli-progress, only on a TTY and without --json), and the printing of phase results.
 */
import { Flags, type Command } from '@oclif/core';
import type * as CliProgress from 'cli-progress';
import type { SingleBar } from 'cli-progress';
import { createRequire } from 'node:module';
import { confirmOrRefuse } from './prompt.js';
import { RegistryCommand } from './base.js';
import { Migration } from '../migrations/context.js';
import { alreadyDoneNote, type PhaseResult, type Plan } from '../migrations/phase.js';
import type { VerifyReport } from '../migrations/verify.js';

const require = createRequire(import.meta.url);

/** Flags every migrate command has (spread into each command's `flags`). */
export const journalFlag = {
  journal: Flags.string({
    summary: 'Migration journal file (default: registry.migration.json beside the config file).',
    helpGroup: 'MIGRATION',
  }),
};

/** Batch size of the copying phases. */
export const batchFlag = {
  batch: Flags.integer({
    summary: 'Entries per copy batch (each batch is journaled: a killed run resumes after the last one).',
    default: 2000,
    min: 1,
  }),
};

/** Flags of the phase commands. */
export const phaseFlags = {
  ...journalFlag,
  'dry-run': Flags.boolean({ summary: 'Show what the phase would do; change nothing.' }),
  yes: Flags.boolean({ char: 'y', summary: 'Do not ask for confirmation (required without a terminal or under CI).' }),
};

/** cutover, distribute: running nodes to switch to the phase's store (repeatable). */
export const liveNodesFlag = {
  node: Flags.string({
    summary: "A running node (http://HOST:PORT) to switch to the phase's store; rollback moves it back. Repeatable.",
    multiple: true,
  }),
};

export abstract class MigrateCommand<T extends typeof Command> extends RegistryCommand<T> {
  private bar: SingleBar | undefined;
  private barLabel = '';

  /** The migration this command steers (a read-only command opens stores without creating them). */
  protected migration(o: { create?: boolean } = {}): Migration {
    const f = this.flags as { config?: string; journal?: string; 'node-name'?: string };
    return new Migration({
      nodeName: f['node-name'],
      create: o.create ?? !(this.ctor as typeof RegistryCommand).readOnly,
      config: f.config,
      journal: f.journal,
      onProgress: (label, done, total) => this.progress(label, done, total),
      log: (msg) => this.note(msg),
    });
  }

  /** Ask before a switch; `--yes` skips; no TTY or CI without --yes is an error, never a hang. */
  protected confirm(question: string, yes: boolean | undefined): Promise<void> {
    return confirmOrRefuse({
      message: question,
      yes,
      consequence: `${question.replace(/\?$/, '')} (no prompt without a terminal or under CI)`,
      action: 'migration step',
      signal: RegistryCommand.session?.signal,
    });
  }

  /** A progress bar on stderr (TTY only, never with --json). */
  protected progress(label: string, done: number, total?: number): void {
    if (this.jsonEnabled() || !process.stderr.isTTY) return;
    const { SingleBar, Presets } = require('cli-progress') as typeof CliProgress;
    if (!this.bar || this.barLabel !== label) {
      this.bar?.stop();
      this.barLabel = label;
      this.bar = new SingleBar(
        {
          stream: process.stderr,
          format: total ? `${label} [{bar}] {percentage}% {value}/{total} eta {eta}s` : `${label} {value}`,
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      );
      this.bar.start(total ?? 0, done);
    }
    if (total !== undefined) this.bar.setTotal(total);
    this.bar.update(done);
  }

  protected stopProgress(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  protected printPlan(p: Plan): void {
    if (this.jsonEnabled()) return;
    this.log(`phase ${p.phase} (dry run: nothing changed)`);
    if (p.from) this.log(`  from: ${p.from}`);
    if (p.to) this.log(`  to:   ${p.to}`);
    p.steps.forEach((s, i) => this.log(`  ${i + 1}. ${s}`));
    if (p.counts)
      this.log(
        `  counts: ${Object.entries(p.counts)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      );
  }

  protected printResult(r: PhaseResult): void {
    this.stopProgress();
    if (this.jsonEnabled()) return;
    const head = r.alreadyDone
      ? `phase ${r.phase}: already done`
      : `phase ${r.phase}: ${r.action === 'down' ? 'rolled back' : r.action === 'verify' ? 'checked' : 'done'}${r.resumed ? ' (resumed)' : ''}`;
    this.log(head);
    // The phase's own "X is already done" note would say the head line again.
    for (const n of r.notes) if (!(r.alreadyDone && n === alreadyDoneNote(r.phase))) this.log(`  ${n}`);
    const v = r.verify as VerifyReport | undefined;
    if (v && 'totals' in v && !v.equivalent) this.log(formatVerify(v));
  }
}

/** A verify report for humans. */
export function formatVerify(v: VerifyReport): string {
  const lines: string[] = [];
  lines.push(
    `${v.equivalent ? 'equivalent' : 'DIFFERENT'}: ${v.a}  vs  ${v.b}${v.strict ? ' (strict: timestamps compared)' : ''}`,
  );
  for (const n of v.namespaces) {
    lines.push(
      `  ${n.namespace}: ${n.a} / ${n.b} entries, ${n.mismatchedBuckets}/${n.buckets} buckets differ` +
        (n.mismatchedBuckets ? ` → ${n.onlyInA} only in A, ${n.onlyInB} only in B, ${n.differing} differing` : ''),
    );
  }
  for (const e of v.onlyInA) lines.push(`  only in A: ${e.namespace}/${e.key} pid ${e.pid} on ${e.node}`);
  for (const e of v.onlyInB) lines.push(`  only in B: ${e.namespace}/${e.key} pid ${e.pid} on ${e.node}`);
  for (const d of v.differing) {
    const f = Object.entries(d.fields).map(([k, [a, b]]) => `${k}: ${JSON.stringify(a)} ≠ ${JSON.stringify(b)}`);
    lines.push(`  differs:   ${d.namespace}/${d.key}  ${f.join('; ')}`);
  }
  if (v.truncated) lines.push(`  … more differences than listed (raise --max-diffs)`);
  lines.push(
    `  totals: ${v.totals.onlyInA} only in A, ${v.totals.onlyInB} only in B, ${v.totals.differing} differing (${v.durationMs} ms)`,
  );
  return lines.join('\n');
}
