/**
 * The node's store sits in a SwitchableBackend (src/node/switch.ts), so `registry node switch` can
 * move a running node to another store. That wrapper is a backend like any other: it runs the
 * conformance suite and the model test over memory and SQLite, and once more after a switch
 * (memory → SQLite), so that whatever store is current, the contract holds.
 */
import { join } from 'node:path';
import { openNodeRegistry } from '../../src/node/server.js';
import { SwitchableBackend } from '../../src/node/switch.js';
import { tempDir } from '../support/tmp.js';
import { backendSuite, type Instance } from './suite.js';
import { modelSuite } from './model.js';

async function switchable(backend: (dir: string) => string, switchTo?: (dir: string) => string): Promise<Instance> {
  const dir = tempDir('procreg-switchable-conf-');
  const registry = await openNodeRegistry({ backend: backend(dir.dir), cleanupInterval: 0 });
  if (!(registry.backend instanceof SwitchableBackend)) throw new Error('the node registry is not switchable');
  if (switchTo) await registry.backend.switchTo(switchTo(dir.dir));
  return { registry, teardown: async () => dir.cleanup() };
}

const cases: Array<[string, () => Promise<Instance>]> = [
  ['switchable(memory)', () => switchable(() => 'memory:')],
  ['switchable(sqlite)', () => switchable((d) => `sqlite:${join(d, 'a.db')}`)],
  [
    'switchable(memory → sqlite)',
    () =>
      switchable(
        () => 'memory:',
        (d) => `sqlite:${join(d, 'b.db')}`,
      ),
  ],
];
for (const [name, factory] of cases) {
  backendSuite(name, factory);
  modelSuite(name, factory);
}
