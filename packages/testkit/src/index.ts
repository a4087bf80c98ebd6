// The public API of @roder/runner-testkit: a deliberate list (the API report in etc/ shows it whole). The
// conformance suites, the stand-ins of the clouds (E2B, Fly, GCS, Box) and the emulators a test starts, with
// the types of their options and handles; the stand-ins' own parts (answers, stores' internals, checksums,
// the emulators' process helper) are not exported.
export {
  type BoxRateLimit,
  type BoxRequestRecord,
  type BoxStandIn,
  type BoxStandInOptions,
  startBoxStandIn,
} from "./box-standin/box-standin.js";
// The Box stand-in's store (`BoxStandIn.store`): tests seed and read its folders and files.
export {
  BoxApiError,
  type BoxFile,
  type BoxFolder,
  type BoxItem,
  BoxStore,
} from "./box-standin/box-store.js";
// Secret canaries and the checks that look for them; a credential rotation in front of a stand-in.
export {
  checkResolvedArtifactCredentials,
  createSecretCanaries,
  errorText,
  type ResolvedArtifactCredentialsCheck,
  type SecretCanaries,
  thrown,
} from "./canary/canaries.js";
export { describeRunnerConformance } from "./conformance/describe-runner-conformance.js";
export {
  describeSandboxConformance,
  type SandboxConformanceOptions,
} from "./conformance/describe-sandbox-conformance.js";
export { describeSandboxMounts, type SandboxMountsOptions } from "./conformance/describe-sandbox-mounts.js";
export type { RunnerConformanceOptions } from "./conformance/runner-conformance-options.js";
export {
  type RotatingCredentialFront,
  type RotatingCredentialFrontOptions,
  type RotatingCredentialRequest,
  startRotatingCredentialFront,
} from "./credential-front/rotating-credential-front.js";
export { startE2bStandIn } from "./e2b-standin/e2b-standin.js";
export type { E2bStandIn, E2bStandInOptions, E2bStandInSandbox } from "./e2b-standin/e2b-standin-types.js";
export { type AzuriteEmulator, startAzurite } from "./emulators/azurite.js";
export { type S3Emulator, startS3Emulator } from "./emulators/s3-emulator.js";
export { startFlyStandIn } from "./fly-standin/fly-standin.js";
export type { FlyStandIn, FlyStandInMachine, FlyStandInOptions } from "./fly-standin/fly-standin-types.js";
export { type GcsStandIn, startGcsStandIn } from "./gcs-standin/gcs-standin.js";
export {
  type HttpsInterceptOptions,
  type HttpsInterceptProxy,
  type InterceptedConnect,
  startHttpsInterceptProxy,
} from "./https-intercept/intercept-proxy.js";
export { createTestCa, type IssuedCertificate, type TestCa } from "./https-intercept/test-ca.js";
export { runScript, type ScriptRun } from "./process/run-script.js";
