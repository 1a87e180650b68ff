/** The wire format lives in the protocol layer (`src/protocol/wire.ts`); this module re-exports it. */
export * from '../protocol/wire.js';
