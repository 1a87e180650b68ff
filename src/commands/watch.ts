import { Flags } from '@oclif/core';
import { RegistryCommand } from '../cli/base.js';
import { type ChangeEvent, InvalidInputError, RegistryError } from '../backends/contract.js';
import { metaCell } from '../cli/output.js';

export default class Watch extends RegistryCommand<typeof Watch> {
  static override readOnly = true;
  static override summary = 'Stream registrations and removals as they happen.';
  static override description =
    'Follows the change feed of backends that have one (sqlite: across processes, a node: http://…, etcd://…, memory: in a REPL). --since REV resumes after a revision; --json prints one JSON event per line (NDJSON). Stops on Ctrl-C, after --count events, or after --timeout.';
  static override examples = [
    '<%= config.bin %> watch -b http://127.0.0.1:7070',
    '<%= config.bin %> watch -b etcd://127.0.0.1:2379 --all-namespaces --json',
    '<%= config.bin %> watch --since 1042 --count 1 -n prod',
  ];
  static override flags = {
    since: Flags.integer({ summary: 'Replay events after this revision first.', min: 0 }),
    'all-namespaces': Flags.boolean({ char: 'A', summary: 'Every namespace.' }),
    count: Flags.integer({ summary: 'Stop after this many events.', min: 1 }),
    timeout: Flags.integer({ summary: 'Stop after this many seconds.', min: 1 }),
  };

  async run(): Promise<void> {
    const reg = await this.registry();
    const backend = reg.backend;
    if (!backend.watch) {
      throw new InvalidInputError(
        `the ${backend.name} backend has no change feed: watch a node (registry serve, then -b http://…) or etcd`,
      );
    }
    // A store that lives in this process only (memory:): a one-shot `registry watch` would wait on a
    // feed nothing else can write to (issue 12 item 14). In the REPL the feed is the session's own registry.
    const inProcess = !backend.capabilities.persistent && !backend.capabilities.remote;
    if (inProcess && !RegistryCommand.session) {
      throw new InvalidInputError(
        'watch needs a shared store: memory: lives in one process, so nothing else can change it: watch a node (registry serve, then -b http://HOST:PORT) or etcd://…, or use watch inside `registry repl -b memory:`',
      );
    }
    const namespace = this.flags['all-namespaces'] ? undefined : (this.ns ?? reg.namespace);
    const json = this.jsonEnabled();
    const c = await this.colors();
    let seen = 0;
    await new Promise<void>((resolve, reject) => {
      let stop: (() => void) | undefined;
      const timers: NodeJS.Timeout[] = [];
      const finish = (err?: Error) => {
        stop?.();
        for (const t of timers) clearTimeout(t); // clears intervals too
        process.off('SIGINT', onSigint);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onSigint = () => finish();
      const onAbort = () => finish();
      const signal = RegistryCommand.session?.signal;
      signal?.addEventListener('abort', onAbort);
      if (!RegistryCommand.session) process.once('SIGINT', onSigint);
      if (this.flags.timeout) timers.push(setTimeout(() => finish(), this.flags.timeout * 1000));
      // A polled feed (sqlite:) holds no socket open: keep the process alive until the watch ends.
      const keepAlive = setInterval(() => {}, 1 << 30);
      timers.push(keepAlive);
      const onEvent = (e: ChangeEvent) => {
        process.stdout.write(json ? `${JSON.stringify(e)}\n` : `${line(e, c)}\n`);
        if (this.flags.count && ++seen >= this.flags.count) finish();
      };
      reg
        .watch({ namespace, sinceRevision: this.flags.since }, onEvent, (err) =>
          finish(
            err instanceof RegistryError
              ? err
              : new RegistryError('UNREACHABLE', `the change feed failed: ${err.message}`, { cause: err }),
          ),
        )
        .then(
          (s) => {
            stop = s;
            if (seen >= (this.flags.count ?? Infinity)) s();
          },
          (err) => finish(err),
        );
    });
  }

  // Events are streamed as NDJSON; there is no final JSON document.
  protected override logJson(): void {}
}

function line(e: ChangeEvent, c: { ok(s: string): string; bad(s: string): string; dim(s: string): string }): string {
  const head = `${c.dim(`#${e.revision}`)} ${e.type === 'put' ? c.ok('PUT   ') : c.bad('DELETE')} ${e.namespace}/${e.key}`;
  return e.entry ? `${head} pid=${e.entry.pid} node=${e.entry.node} meta=${metaCell(e.entry.meta)}` : head;
}
