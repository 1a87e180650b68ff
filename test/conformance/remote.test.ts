import { join } from 'node:path';
import { ProcessRegistry } from '../../src/registry/service.js';
import { startNode } from '../support/node.js';
import { tempDir } from '../support/tmp.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';
import { feedSuite } from './feed-suite.js';

/** The remote backend through a real node on port 0, over `backend`. */
const through = (backend: () => { url: string; cleanup?(): void }) => async () => {
  const b = backend();
  const node = await startNode(b.url);
  return {
    registry: await ProcessRegistry.open({ backend: node.url, cleanupInterval: 0 }),
    teardown: async () => {
      await node.close();
      b.cleanup?.();
    },
  };
};

const memory = through(() => ({ url: 'memory:' }));
const sqlite = through(() => {
  const t = tempDir();
  return { url: `sqlite:${join(t.dir, 'node.db')}`, cleanup: t.cleanup };
});
backendSuite('remote (node over memory)', memory);
modelSuite('remote (node over memory)', memory);
backendSuite('remote (node over sqlite)', sqlite);
modelSuite('remote (node over sqlite)', sqlite);
feedSuite('remote (node over sqlite)', sqlite);
