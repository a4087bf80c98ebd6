import type { RunnerCapabilities, RunnerMountCapabilities } from "./schemas.js";

/**
 * A provider's capabilities: every one the contract knows, but those `overrides` set (a provider states what it
 * lacks, or what it finds out at run time, and nothing else).
 */
export function runnerCapabilities(
  overrides: Partial<Omit<RunnerCapabilities, "mounts">> & { mounts?: Partial<RunnerMountCapabilities> } = {},
): RunnerCapabilities {
  const { mounts, ...rest } = overrides;
  return {
    command_exec: true,
    file_read: true,
    file_write: true,
    port_preview: true,
    snapshots: true,
    cancellation: true,
    artifact_export: true,
    ...rest,
    mounts: {
      s3: true,
      gcs: true,
      r2: true,
      azure_blob: true,
      box_storage: true,
      provider_native: true,
      ...mounts,
    },
  };
}
