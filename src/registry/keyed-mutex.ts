/**
 * Per-key serialisation of mutations (design §3): calls for the same key run one after another,
 * calls for different keys run concurrently. One global queue would cap a remote or etcd backend
 * at one round trip at a time.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Keys with queued or running work. */
  get depth(): number {
    return this.tails.size;
  }

  run<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
    const prev = this.tails.get(key);
    const start = prev ? prev.then(noop, noop).then(fn) : Promise.resolve().then(fn);
    const tail = start.then(noop, noop);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return start;
  }
}

function noop(): void {}
