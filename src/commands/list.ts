import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import type { Registration } from '../backends/contract.js';
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
  };

  async run(): Promise<{ items: Registration[]; next?: string }> {
    const reg = await this.registry();
    const where = parseWhere(this.flags.where ?? []);
    if (this.flags['all-namespaces']) await reg.assertIntact(); // everything is read: a damaged file is refused
    const spaces = this.flags['all-namespaces'] ? await reg.namespaces() : [this.ns ?? reg.namespace];
    const items: Registration[] = [];
    let next: string | undefined;
    const limit = this.flags.limit;
    const signal = RegistryCommand.session?.signal;
    for (const namespace of spaces) {
      const left = limit === undefined ? undefined : limit - items.length;
      if (left !== undefined && left <= 0) break;
      await yieldIfWatched(signal);
      for await (const page of reg.pages({ namespace, after: this.flags.after, limit: left, where })) {
        items.push(...page.items);
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
    return next ? { items, next } : { items };
  }
}
