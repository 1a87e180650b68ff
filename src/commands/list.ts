import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import type { ListPlan, Registration } from '../backends/contract.js';
import { mergePlans } from '../core/plan.js';
import { entryTable, renderTable } from '../cli/output.js';
import { parseWhere } from '../registry/validate.js';
import { throwIfCancelled, yieldIfWatched } from '../cli/cancel.js';

export default class List extends RegistryCommand<typeof List> {
  static override readOnly = true;
  static override summary = 'List live registrations, ordered by key.';
  static override description =
    'Pages through the backend with a cursor, so large registries stream in bounded memory. With --limit, the result carries `next`, the cursor to pass as --after for the following page.';
  static override examples = [
    '<%= config.bin %> list',
    '<%= config.bin %> list --where role=worker --where region=eu',
    '<%= config.bin %> list --limit 100 --after web-099 --json',
    '<%= config.bin %> list --all-namespaces',
    '<%= config.bin %> list --where zone=z777 --explain',
  ];
  static override flags = {
    where: Flags.string({
      char: 'w',
      summary: 'Metadata filter field=value (repeatable, all must match; list values match by element).',
      multiple: true,
    }),
    limit: Flags.integer({ char: 'l', summary: 'At most this many entries (default: all).', min: 1 }),
    after: Flags.string({ summary: 'Start after this key (the `next` cursor of a previous page).' }),
    'all-namespaces': Flags.boolean({ char: 'A', summary: 'List every namespace.', exclusive: ['after'] }),
    explain: Flags.boolean({
      summary: 'Say on stderr how --where was answered: which index, or a scan, and how many entries it read.',
    }),
  };

  async run(): Promise<{ items: Registration[]; next?: string; explain?: ListPlan | null }> {
    const reg = await this.registry();
    const where = parseWhere(this.flags.where ?? []);
    if (this.flags['all-namespaces']) await reg.assertIntact(); // everything is read: a damaged file is refused
    const spaces = this.flags['all-namespaces'] ? await reg.namespaces() : [this.ns ?? reg.namespace];
    const items: Registration[] = [];
    const plans: ListPlan[] = [];
    let next: string | undefined;
    const limit = this.flags.limit;
    const signal = RegistryCommand.session?.signal;
    for (const namespace of spaces) {
      const left = limit === undefined ? undefined : limit - items.length;
      if (left !== undefined && left <= 0) break;
      await yieldIfWatched(signal);
      for await (const page of reg.pages({ namespace, after: this.flags.after, limit: left, where })) {
        items.push(...page.items);
        if (page.plan) plans.push(page.plan);
        if (page.next && limit !== undefined && items.length >= limit) next = page.next;
        await yieldIfWatched(signal);
        throwIfCancelled(signal, `list stopped after ${items.length} entries`);
      }
    }
    if (!this.jsonEnabled()) {
      // "Nothing" is a note (stderr), so a pipe reading the table gets no rows rather than a sentence.
      if (items.length === 0) this.note('no live registrations');
      else this.log(renderTable(entryTable(items), this.view()));
      if (next) this.note(`more after ${JSON.stringify(next)}: --after '${next.replace(/'/g, "'\\''")}'`);
    }
    // How --where was answered (docs/indexes.md): in JSON whenever there is a --where, on stderr with --explain.
    const explain = where.length || this.flags.explain ? (mergePlans(plans) ?? null) : undefined;
    if (this.flags.explain) this.note(`explain: ${describePlan(explain ?? null)}`);
    const out = next ? { items, next } : { items };
    return explain === undefined ? out : { ...out, explain };
  }
}

function describePlan(p: ListPlan | null): string {
  if (!p) return 'this backend does not report how it answers --where';
  if (p.method === 'index') return `index on "${p.field}" (${p.scanned} index entries read)`;
  return `scan (${p.scanned} entries read: no --where field is indexed)`;
}
