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
export * from "./credentials.js";
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
