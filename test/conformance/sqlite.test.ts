import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { tempDir } from '../support/tmp.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';
import { feedSuite } from './feed-suite.js';

const factory = async () => {
  const t = tempDir();
  return {
    registry: await ProcessRegistry.open({ backend: `sqlite:${join(t.dir, 'registry.db')}`, cleanupInterval: 0 }),
    teardown: async () => t.cleanup(),
  };
};
backendSuite('sqlite', factory);
modelSuite('sqlite', factory);
feedSuite('sqlite', factory);
