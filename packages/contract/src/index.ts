// The public API of @roder/runner-contract: a deliberate list (the API report in etc/ shows it whole).
// Helpers only the contract itself uses (codec internals, the operation context, secret-ref plumbing) are
// not exported.
export { runnerCapabilities } from "./capabilities.js";
export {
  type Codec,
  codecs,
} from "./codecs.js";
export {
  type CommandOutcome,
  cancelledMarker,
  commandOutcome,
  timeoutMarker,
  truncationMarker,
} from "./command-outcome.js";
export {
  CancelledError,
  CommandNotFoundError,
  CommandTimeoutError,
  hasCode,
  InvalidDestinationConfigError,
  InvalidMountUriError,
  InvalidSecretError,
  isRetryableStatus,
  MissingDependencyError,
  MissingSecretError,
  PathOutsideWorkspaceError,
  ProviderApiError,
  RunnerError,
  type RunnerErrorCode,
  type RunnerErrorOptions,
  SecretInConfigError,
  SessionNotFoundError,
  UnknownProviderError,
  UnsupportedCapabilityError,
  WireDecodeError,
} from "./errors/index.js";
export {
  createHttpClient,
  type HttpAnswer,
  type HttpCall,
  type HttpClient,
  type HttpClientAuth,
  type HttpClientOptions,
  type HttpErrorAnswer,
  parseRetryAfter,
  type TokenSource,
} from "./http-client.js";
export {
  type RunnerLimits,
  RunnerLimitsSchema,
} from "./limits.js";
export {
  type Credential,
  type CredentialArgs,
  credential,
  type LoadTokenArgs,
  loadToken,
  tokenRoute,
} from "./load-token.js";
export {
  parseArtifactExportInput,
  parseCommandInput,
  parseDestinationInput,
  parseFileWriteInput,
  parsePortInput,
  type RunnerArtifactExportRequestInput,
  type RunnerDestinationInput,
  type RunnerFileWriteInput,
  type RunnerPortRequestInput,
} from "./method-inputs.js";
export {
  type MountPlanEntry,
  MountPlanEntrySchema,
} from "./mount-plan.js";
export {
  type ParsedMountUri,
  parseMountUri,
} from "./mount-uri.js";
export {
  type RunnerObserver,
  type RunnerOperationEvent,
  RunnerOperationEventSchema,
  withObserver,
} from "./observer.js";
export type { OperationContext } from "./operation-context.js";
export {
  OutputBudget,
  OutputLog,
  OutputQueue,
} from "./output-queue.js";
export { type ProviderConfigOptions, parseProviderConfig } from "./provider-config.js";
export { checkProviderId, decodeSessionMetadata } from "./provider-id.js";
export {
  createRunnerRegistry,
  type RunnerRegistry,
} from "./registry.js";
export {
  DEFAULT_RETRY,
  type RetryPolicy,
  sleep,
  withRetry,
} from "./retry.js";
export {
  checkRange,
  openFileStream,
  type RemoteRunnerProvider,
  type RemoteRunnerProviderOf,
  type RemoteRunnerSession,
  type RemoteRunnerSessionWith,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerExportOptions,
  type RunnerExportProgress,
  type RunnerFileStream,
  type RunnerFileStreamRequest,
  type RunnerOutputChunk,
  type RunnerSessionOptionalMethod,
  type RunnerSignal,
  type RunnerStartCommandInput,
  readText,
  writeFileFromStream,
} from "./runner-interfaces.js";
export {
  type RunnerArtifactExportRequest,
  RunnerArtifactExportRequestSchema,
  type RunnerArtifactExportResult,
  RunnerArtifactExportResultSchema,
  type RunnerCapabilities,
  RunnerCapabilitiesSchema,
  type RunnerCommandRequest,
  type RunnerCommandRequestInput,
  RunnerCommandRequestSchema,
  type RunnerCommandResult,
  RunnerCommandResultSchema,
  type RunnerDestination,
  RunnerDestinationSchema,
  type RunnerFileReadRequest,
  RunnerFileReadRequestSchema,
  type RunnerFileReadResult,
  RunnerFileReadResultSchema,
  type RunnerFileWriteRequest,
  RunnerFileWriteRequestSchema,
  type RunnerManifest,
  type RunnerManifestEntry,
  RunnerManifestEntrySchema,
  RunnerManifestSchema,
  type RunnerMount,
  type RunnerMountCapabilities,
  RunnerMountCapabilitiesSchema,
  type RunnerMountIntent,
  RunnerMountIntentSchema,
  type RunnerMountKind,
  RunnerMountKindSchema,
  RunnerMountSchema,
  type RunnerPortRequest,
  RunnerPortRequestSchema,
  type RunnerPortResult,
  RunnerPortResultSchema,
  type RunnerSecretRef,
  RunnerSecretRefSchema,
  type RunnerSessionState,
  RunnerSessionStateSchema,
  type RunnerSnapshotRef,
  RunnerSnapshotRefSchema,
  type ThreadRunnerBinding,
  ThreadRunnerBindingSchema,
} from "./schemas.js";
export {
  assertNoSecretsInConfig,
  type EnvSource,
  redactSecrets,
  resolveSecret,
  type SecretResolver,
  secretEnvironment,
  secretEnvName,
  secretValuesFromEnv,
} from "./secrets.js";
export { checkPort, checkPty, checkTerminalSize, isTerminalSize } from "./session-guards.js";
export { SessionLifecycle, type SessionLifecycleArgs } from "./session-lifecycle.js";
export {
  argvToShell,
  shellQuote,
} from "./shell-quote.js";
export {
  type OwnedSession,
  type SweepableProvider,
  type SweepResult,
  sweepExpiredSessions,
} from "./sweeper.js";
export {
  confinePath,
  isWithin,
  normalizePosix,
  RemoteWorkspace,
  sandboxViewPath,
} from "./workspace.js";
