import { type Etcd3, type Lease } from 'etcd3';

// ---------------------------------------------------------------------------------------------
// Leases, probing, errors and small helpers.
// ---------------------------------------------------------------------------------------------

/**
 * The leases of one process: registrations go to a lease with fewer than `cap` attached keys, a
 * new lease is granted when all are full (etcd issue 15993: a put with a lease costs time linear
 * in the keys already on it). Counts are this process's own bookkeeping.
 */
export class LeasePool {
  private readonly pool: Array<{ lease: Lease; id: string; keys: number }> = [];
  private granting: Promise<{ lease: Lease; id: string; keys: number }> | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly ttl: number,
    private readonly cap: number,
  ) {}

  async acquire(keys: number): Promise<string> {
    for (;;) {
      const slot = this.pool.find((s) => s.keys + keys <= this.cap || s.keys === 0);
      if (slot) {
        slot.keys += keys;
        return slot.id;
      }
      if (!this.granting) {
        this.granting = this.grant().finally(() => {
          this.granting = null;
        });
      }
      await this.granting;
    }
  }

  private async grant() {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    const id = await lease.grant().catch((err) => {
      lease.release();
      throw err;
    });
    const slot = { lease, id, keys: 0 };
    lease.on('lost', () => {
      const i = this.pool.indexOf(slot);
      if (i >= 0) this.pool.splice(i, 1);
    });
    this.pool.push(slot);
    return slot;
  }

  /** Keys counted by `acquire` that were not written. */
  release(id: string | undefined, keys: number): void {
    const s = this.pool.find((x) => x.id === id);
    if (s) s.keys = Math.max(0, s.keys - keys);
  }

  /** A lease etcd no longer knows (expired): never hand it out again. */
  drop(id: string): void {
    const i = this.pool.findIndex((x) => x.id === id);
    if (i >= 0) this.pool.splice(i, 1)[0]?.lease.release();
  }

  /** Keys on lease `id` (a kv's `lease` field) that were deleted or replaced. */
  forget(id: string, keys: number): void {
    this.release(id, keys);
  }

  count(): number {
    return this.pool.length;
  }

  async revokeAll(): Promise<void> {
    const all = this.pool.splice(0);
    await Promise.all(all.map((s) => s.lease.revoke({ deadline: Date.now() + 2000 }).catch(() => s.lease.release())));
  }
}
