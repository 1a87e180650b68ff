/**
 * `verify A B` and the migrations' proofs compare two states through their services. The
 * comparison lives with the service (src/registry/compare.ts), which a hybrid's health check
 * also uses; this module re-exports it for the migrations and existing importers.
 */
export * from '../registry/compare.js';
