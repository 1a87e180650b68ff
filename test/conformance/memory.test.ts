import { ProcessRegistry } from '../../src/registry/service.js';
import { backendSuite } from './suite.js';
import { modelSuite } from './model.js';
import { feedSuite } from './feed-suite.js';

const factory = async () => ({ registry: await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 }) });
backendSuite('memory', factory);
modelSuite('memory', factory);
feedSuite('memory', factory);
