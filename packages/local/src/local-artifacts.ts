import type {
  EnvSource,
  RunnerArtifactExportRequest,
  RunnerArtifactExportResult,
  RunnerExportOptions,
} from "@roder/runner-contract";
import { UnsupportedCapabilityError } from "@roder/runner-contract";
import { exportArtifact, hostArtifactSource, parseArtifactTarget } from "@roder/runner-storage";

/**
 * Exports a workspace file or directory to the destination's artifact bucket (`config.artifacts`). Direct
 * path: `curl` uploads to a signed URL; stream path: the host streams with bounded memory.
 */
export async function exportLocalArtifact(args: {
  /**
   * Opens the file to export once the destination is known to export (see `pinForExport`): the path to read
   * (a pinned descriptor for a regular file) and how to release it.
   */
  pin: () => Promise<{ path: string; close: () => Promise<void> }>;
  /** The artifact's name (the path read may be a `/proc/<pid>/fd/<n>`). */
  name: string;
  request: RunnerArtifactExportRequest;
  config: unknown;
  env: EnvSource;
  signal?: AbortSignal;
  onProgress?: RunnerExportOptions["onProgress"];
}): Promise<RunnerArtifactExportResult> {
  if (args.config === undefined) {
    throw new UnsupportedCapabilityError({
      providerId: "unix-local",
      capability: "artifact_export",
      message: "unix-local: this destination has no artifacts bucket (config.artifacts)",
    });
  }
  const target = parseArtifactTarget("unix-local", args.config);
  const pinned = await args.pin();
  try {
    return await exportArtifact({
      providerId: "unix-local",
      target,
      env: args.env,
      source: hostArtifactSource({ name: args.name }),
      request: args.request,
      path: pinned.path,
      ...(args.signal ? { signal: args.signal } : {}),
      ...(args.onProgress ? { onProgress: args.onProgress } : {}),
    });
  } finally {
    await pinned.close();
  }
}
