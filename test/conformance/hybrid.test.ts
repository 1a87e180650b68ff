/**
 * The hybrid backend (migration phase 2: primary = a legacy store, backup = the SQLite target) runs
 * the conformance suite and the model test like every other backend.
 */
import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';

const factory = async () => {
  const dir = tempDir('procreg-hybrid-conf-');
  return {
    registry: await ProcessRegistry.open({
      backend: 'hybrid:',
      backendOpts: {
        primary: { backend: `legacy:${join(dir.dir, 'old.db')}`, backendOpts: { create: true } },
        backup: `sqlite:${join(dir.dir, 'new.db')}`,
      },
      cleanupInterval: 0,
    }),
    teardown: async () => dir.cleanup(),
  };
};
backendSuite('hybrid', factory);
modelSuite('hybrid', factory);
