/**
 * One OS process of the SQLite scenario (test/scenarios/local.test.ts): opens the registry on the
 * shared file, runs the workload with its clients, prints the history as JSON on stdout.
 *
 *   node sqlite-client.js <db> <first client id> <clients> <pids,…> <keys,…> <until (Date.now ms)> <seed>
 */
import { ProcessRegistry } from '../../src/registry/service.js';
import { toJSON } from '../support/history.js';
import { runWorkload } from '../support/workload.js';

const [db, first, count, pidList, keyList, until, seed] = process.argv.slice(2);
const n = Number(count);
const clients = await Promise.all(
  Array.from({ length: n }, () => ProcessRegistry.open({ backend: `sqlite:${db}`, cleanupInterval: 0 })),
);
const r = await runWorkload({
  clients,
  ids: Array.from({ length: n }, (_, i) => Number(first) + i),
  keys: (keyList ?? '').split(','),
  pids: (pidList ?? '').split(',').map(Number),
  durationMs: 0,
  until: Number(until),
  seed: Number(seed),
});
await Promise.all(clients.map((c) => c.close()));
process.stdout.write(toJSON(r.recorder.ops));
