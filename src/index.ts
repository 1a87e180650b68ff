/** procreg — library entry. */
export * from './backends/contract.js';
export {
  ProcessRegistry,
  DEFAULT_NAMESPACE,
  type OpenOptions,
  type CallOptions,
  type RegisterCallOptions,
  type ListCallOptions,
  type Via,
} from './registry/service.js';
export { schemes, defaultBackendUrl, defaultDatabasePath, openBackend, parseBackendUrl } from './backends/open.js';
export { canonicalJson, Digest, BucketDigester, bucketOf, entryIdentity } from './registry/digest.js';
export { LocalLiveness, procInfo, pidExists } from './registry/liveness.js';
export * as validate from './registry/validate.js';
