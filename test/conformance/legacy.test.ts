/**
 * The legacy backend (a dual-storage legacy SQLite file, DESIGN.md §5) runs the conformance suite and
 * the model test like every other backend. Its registrations are written through `register`, which
 * checks and writes the backup table, so with an empty `registry` table the legacy semantics equal
 * the contract's; the cases where they differ on purpose (a `registry` row shadowing the backup row)
 * are asserted in test/migrations/legacy.test.ts.
 */
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';

const factory = async () => {
  const dir = tempDir('procreg-legacy-conf-');
  return {
    registry: await ProcessRegistry.open({
      backend: `legacy:${join(dir.dir, 'legacy.db')}`,
      backendOpts: { create: true },
      cleanupInterval: 0,
    }),
    teardown: async () => dir.cleanup(),
  };
};
backendSuite('legacy', factory);
modelSuite('legacy', factory);
