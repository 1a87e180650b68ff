/** procreg — library entry. */
/**
 * The contract's public names, listed rather than `export *`: contract.ts also holds `then`, an
 * internal MaybePromise helper, and a module namespace with a callable `then` is a thenable, so
 * `await import('procreg')` would never resolve to the module (issue 12 item 16). test/unit/entry.test.ts
 * checks that every other runtime export of contract.ts is re-exported here.
 */
export {
  statusFromDeadShare,
  defaultCapabilities,
  exitCodes,
  RegistryError,
  InvalidInputError,
  NotFoundError,
  AlreadyRegisteredError,
  DeadProcessError,
  UnreachableError,
  NoRegistryError,
  OutcomeUnknownError,
  UnauthorizedError,
  ClosedError,
  ConflictError,
  TimeoutError,
  CompactedError,
  asRegistryError,
  type MaybePromise,
  type Meta,
  type Registration,
  type RegisterOutcome,
  type RegisterOptions,
  type UnregisterCondition,
  type ListOptions,
  type Page,
  type UpdateOptions,
  type HealthStatus,
  type HealthReport,
  type IntegrityReport,
  type ChangeEvent,
  type BucketDigests,
  type BulkResult,
  type Capabilities,
  type BackendContext,
  type Backend,
  type ServiceStats,
  type SweepResult,
  type ProcessSummary,
  type BackendFactory,
  type ErrorCode,
  type Divergence,
  type DigestPlan,
  type CompactReport,
  type InspectReport,
} from './backends/contract.js';
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
export { canonicalJson, Digest, BucketDigester, bucketOf, entryIdentity } from './core/digest.js';
export { LocalLiveness, procInfo, pidExists } from './registry/liveness.js';
export * as validate from './registry/validate.js';
export {
  importEntries,
  ImportStoppedError,
  type ImportOptions,
  type ImportResult,
  type ImportProblem,
} from './registry/import.js';
