import type {
  EnvSource,
  RunnerArtifactExportRequest,
  RunnerArtifactExportResult,
} from "@roder/runner-contract";
import { UnsupportedCapabilityError } from "@roder/runner-contract";
import { exportArtifact, hostArtifactSource, parseArtifactTarget } from "@roder/runner-storage";

/**
 * Exports a workspace file or directory to the destination's artifact bucket (`config.artifacts`). Direct
 * path: `curl` uploads to a signed URL; stream path: the host streams with bounded memory.
 */
export async function exportLocalArtifact(args: {
  hostPath: string;
  /** The artifact's name (default: the last component of `hostPath`). */
  name?: string;
  request: RunnerArtifactExportRequest;
  config: unknown;
  env: EnvSource;
  signal?: AbortSignal;
}): Promise<RunnerArtifactExportResult> {
  if (args.config === undefined) {
    throw new UnsupportedCapabilityError({
      providerId: "unix-local",
      capability: "artifact_export",
      message: "unix-local: this destination has no artifacts bucket (config.artifacts)",
    });
  }
  const target = parseArtifactTarget("unix-local", args.config);
  return exportArtifact({
    providerId: "unix-local",
    target,
    env: args.env,
    source: hostArtifactSource(args.name ? { name: args.name } : {}),
    request: args.request,
    path: args.hostPath,
    ...(args.signal ? { signal: args.signal } : {}),
  });
}
