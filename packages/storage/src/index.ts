// The public API of @roder/runner-storage: a deliberate list (the API report in etc/ shows it whole). The
// credential types are the zod schemas' shapes, so the schemas are published with them; the env-variable naming
// of a bucket kind's secret (credentialVariables) stays internal: resolveBucketCredentials is the way in.
export {
  type ArtifactTargetConfig,
  ArtifactTargetConfigSchema,
  type ExportArgs,
  exportArtifact,
  parseArtifactTarget,
} from "./artifact-export.js";
export type { PartUploadJob, PartUploadResult } from "./artifact-parts.js";
export {
  type ArtifactSource,
  hostArtifactSource,
  type PreparedArtifact,
  sessionArtifactSource,
} from "./artifact-source.js";
export {
  type AzureCredentials,
  AzureCredentialsSchema,
  type BoxCredentials,
  BoxCredentialsSchema,
  type BucketCredentials,
  type GcsCredentials,
  GcsCredentialsSchema,
  type R2Credentials,
  R2CredentialsSchema,
  resolveBucketCredentials,
  type S3Credentials,
  S3CredentialsSchema,
} from "./credentials.js";
export {
  ALLOW_CREDENTIALS_IN_SANDBOX,
  allowsCredentialsInSandbox,
  CREDENTIALS_IN_SANDBOX_ALTERNATIVES,
  CredentialsInSandboxError,
  type CredentialsInSandboxSetting,
  credentialsInSandboxSetting,
} from "./credentials-in-sandbox.js";
export { loadOptionalModule } from "./load-optional.js";
export { manifestSourceFiles } from "./manifest-files.js";
export {
  type MountPlanOptions,
  planHostMounts,
  planInSandboxMounts,
  planServerMounts,
} from "./mount-planning.js";
export { type HostMount, mountOnHost } from "./rclone-host.js";
export { type PlanOptions, planRcloneMount, type RcloneMountPlan } from "./rclone-plan.js";
export {
  checkSandboxMounts,
  mountInSandbox,
  mountManifestInSandbox,
  type SandboxMountRef,
  unmountInSandbox,
} from "./rclone-session.js";
export { checkSandboxDestination } from "./sandbox-destination.js";
