/** The etcd backend's change feed, digests and revisions. */
import { BucketDigester } from '../../core/digest.js';
import { type BucketDigests, type ChangeEvent, UnreachableError, CompactedError } from '../contract.js';
import { parseEntry } from './keys.js';
import { withDeadline } from './faults.js';
import { EtcdWrites } from './transactions.js';

export abstract class EtcdWatch extends EtcdWrites {
  async watch(
    opts: { namespace?: string; sinceRevision?: number },
    onEvent: (e: ChangeEvent) => void,
    onError?: (err: Error) => void,
  ): Promise<() => void> {
    this.check();
    const base = opts.namespace === undefined ? this.bytes('/r/') : this.nsPrefix(opts.namespace);
    const rootLen = this.bytes('/r/').length;
    let b = this.client.watch().prefix(base.toString());
    if (opts.sinceRevision !== undefined) b = b.startRevision(String(opts.sinceRevision + 1));
    const watcher = await this.rpc('watch', () => withDeadline(b.create(), this.retryTimeout, 'watch'));
    this.watchers.add(watcher);
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        const rest = ev.kv.key.subarray(rootLen).toString();
        const slash = rest.indexOf('/');
        const e: ChangeEvent = {
          revision: Number(ev.kv.mod_revision),
          type: ev.type === 'Delete' ? 'delete' : 'put',
          namespace: rest.slice(0, slash),
          key: rest.slice(slash + 1),
        };
        if (e.type === 'put') e.entry = parseEntry(ev.kv);
        onEvent(e);
      }
    });
    let last = opts.sinceRevision ?? 0;
    watcher.on('data', (res) => {
      for (const ev of res.events) last = Math.max(last, Number(ev.kv.mod_revision));
    });
    const failed = async (err: Error): Promise<void> => {
      this.watchers.delete(watcher);
      // etcd cancels a watch whose start revision is compacted; the client drops the compact
      // revision, so ask: can the revision after the last one seen still be read?
      const compacted = /compact/i.test(err.message) || (await this.isCompacted(last + 1));
      onError?.(
        compacted
          ? new CompactedError(
              `the etcd watch from revision ${last} was compacted: list again and watch from the current revision`,
              { cause: err },
            )
          : new UnreachableError(`the etcd watch failed: ${err.message}`, { cause: err }),
      );
    };
    watcher.on('error', (err: Error) => void failed(err));
    return () => {
      this.watchers.delete(watcher);
      void watcher.cancel().catch(() => undefined);
    };
  }

  async digest(namespace: string, buckets: number): Promise<BucketDigests> {
    // Computed from one consistent snapshot (all pages read at the first page's revision).
    const d = new BucketDigester(buckets);
    for await (const kv of this.scan('digest', this.nsPrefix(namespace))) d.add(parseEntry(kv));
    return d.result();
  }

  /** The store's current revision (list-then-watch: list, then watch from this). */
  async currentRevision(): Promise<number> {
    const res = await this.rpc('revision', () =>
      this.client.kv.range({ key: this.bytes('/r/'), count_only: true, serializable: this.serializable }),
    );
    return Number(res.header.revision);
  }
}
