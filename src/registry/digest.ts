/** The bucket digester lives in the core layer (`src/core/digest.ts`); this module re-exports it. */
export * from '../core/digest.js';
