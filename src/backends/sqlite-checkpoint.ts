/**
 * WAL checkpoints off the event loop for a long run of write transactions (a restore's staging,
 * src/backends/sqlite-restore.ts). SQLite's automatic checkpoint runs inside the commit that crosses
 * 1000 pages, with its fsyncs: that commit held the event loop for ~100 ms on an idle machine at 1M
 * entries, seconds under I/O load. Here a worker thread with its own connection runs a PASSIVE
 * checkpoint when asked; the writer turns its automatic checkpoint off meanwhile and awaits each
 * checkpoint before it writes on (the event loop runs while it waits), so the checkpoint copies
 * everything written so far, the next transaction starts the WAL again from its beginning, and the
 * WAL stays bounded by what is written between two checkpoints.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type DatabaseT from 'better-sqlite3';
import { loadBetterSqlite } from './sqlite-open.js';

interface Job {
  checkpointFile: string;
}

/** A checkpointing worker on `db`'s file; `undefined` where no worker can be started. */
export class Checkpointer {
  private constructor(
    private readonly db: DatabaseT.Database,
    private readonly worker: Worker,
    private readonly autocheckpoint: number,
  ) {}

  static start(db: DatabaseT.Database): Checkpointer | undefined {
    let worker: Worker;
    try {
      // By name, not import.meta.url itself: inside a command's bundle (dist/fast/) that is the
      // bundle, and scripts/build-lite.ts puts a sqlite-checkpoint.js beside it for this worker.
      worker = new Worker(new URL('./sqlite-checkpoint.js', import.meta.url), {
        workerData: { checkpointFile: db.name } satisfies Job,
        execArgv: [],
      });
    } catch {
      return undefined;
    }
    const auto = db.pragma('wal_autocheckpoint', { simple: true }) as number;
    db.pragma('wal_autocheckpoint = 0');
    return new Checkpointer(db, worker, auto);
  }

  /** One PASSIVE checkpoint in the worker. Throws when the worker failed (the caller checkpoints inline). */
  run(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
        this.worker.off('exit', onExit);
      };
      const onMessage = (m: { ok: boolean; error?: string }) => {
        done();
        if (m.ok) resolve();
        else reject(new Error(m.error));
      };
      const onError = (err: Error) => {
        done();
        reject(err);
      };
      // A worker that ends without answering would leave this waiting on nothing.
      const onExit = (code: number) => {
        done();
        reject(new Error(`the checkpoint worker exited (code ${code}) without answering`));
      };
      this.worker.once('message', onMessage);
      this.worker.once('error', onError);
      this.worker.once('exit', onExit);
      this.worker.postMessage('checkpoint');
    });
  }

  /** Stop the worker and give the connection its automatic checkpoint back. */
  async close(): Promise<void> {
    try {
      this.db.pragma(`wal_autocheckpoint = ${this.autocheckpoint}`);
    } catch {
      // the connection is closing
    }
    await this.worker.terminate();
  }
}

if (!isMainThread && parentPort && (workerData as Job | undefined)?.checkpointFile) {
  const port = parentPort;
  const Database = loadBetterSqlite();
  const db = new Database((workerData as Job).checkpointFile);
  db.pragma('busy_timeout = 5000');
  port.on('message', () => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
      port.postMessage({ ok: true });
    } catch (e) {
      port.postMessage({ ok: false, error: (e as Error).message });
    }
  });
}
