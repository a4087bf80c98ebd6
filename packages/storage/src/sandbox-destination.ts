import { confinePath, type EnvSource, type RunnerDestination } from "@roder/runner-contract";
import { parseArtifactTarget } from "./artifact-export.js";
import type { CredentialsInSandboxSetting } from "./credentials-in-sandbox.js";
import { checkSandboxMounts } from "./rclone-session.js";

/**
 * What a remote sandbox provider checks before it creates (and pays for) anything, the same way for every
 * provider: the artifacts bucket when one is set (`parseArtifactTarget`), each bucket mount of the default
 * manifest (`checkSandboxMounts`: URI, secret ref set, path in the workspace, credentials allowed in the
 * sandbox) and each manifest entry's target, which must stay in the workspace.
 */
export function checkSandboxDestination(
  providerId: string,
  destination: Pick<RunnerDestination, "default_manifest">,
  config: {
    artifacts?: unknown;
    workspace_root: string;
    allow_credentials_in_sandbox?: CredentialsInSandboxSetting | undefined;
  },
  env?: EnvSource,
): void {
  if (config.artifacts !== undefined) parseArtifactTarget(providerId, config.artifacts);
  checkSandboxMounts(providerId, destination.default_manifest.mounts, config.workspace_root, env, {
    allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
  });
  for (const e of destination.default_manifest.entries)
    confinePath(e.target, { root: config.workspace_root, access: "write" });
}
