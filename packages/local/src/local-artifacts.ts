import type {
  EnvSource,
  RunnerArtifactExportRequest,
  RunnerArtifactExportResult,
} from "@roder/runner-contract";
import { UnsupportedCapabilityError } from "@roder/runner-contract";

/** Exports a workspace file or directory to the destination's artifact bucket. */
export async function exportLocalArtifact(args: {
  hostPath: string;
  request: RunnerArtifactExportRequest;
  config: unknown;
  env: EnvSource;
  signal?: AbortSignal;
}): Promise<RunnerArtifactExportResult> {
  throw new UnsupportedCapabilityError({ providerId: "unix-local", capability: "artifact_export" });
}
