import {
  parseArtifactExportInput,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  RunnerError,
  type RunnerExportOptions,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  sandboxViewPath,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { exportArtifact, parseArtifactTarget, sessionArtifactSource } from "@roder/runner-storage";
import type { FlyApi } from "./fly-api.js";
import { type FlyDestinationConfig, suspendProblem } from "./fly-config.js";
import { deleteVolume } from "./fly-volumes.js";

/** What both kinds of Fly session (exec mode, agent mode) know of their machine. */
export interface FlyMachineInfo {
  machineId: string;
  config: FlyDestinationConfig;
  env: Record<string, string | undefined>;
  /** The workspace volume, deleted at close. */
  volumeId?: string | undefined;
}

/**
 * The storage package's direct path, run by the session's own commands: the machine uploads to a signed URL.
 * The archive of a directory is made in a workspace-local temp dir (each exec may have its own /tmp).
 */
export function exportFromMachine(
  session: RemoteRunnerSession,
  info: FlyMachineInfo,
  root: string,
  input: RunnerArtifactExportRequestInput,
  options?: RunnerExportOptions,
): Promise<RunnerArtifactExportResult> {
  const request = parseArtifactExportInput(input);
  if (info.config.artifacts === undefined)
    throw new UnsupportedCapabilityError({
      providerId: "fly",
      capability: "artifact_export",
      message: "fly: this destination has no artifacts bucket (config.artifacts)",
    });
  return exportArtifact({
    providerId: "fly",
    target: parseArtifactTarget("fly", info.config.artifacts),
    env: info.env,
    source: sessionArtifactSource(session, { tmpDir: `${root}/.roder/tmp` }),
    request,
    path: sandboxViewPath(request.path, root),
    ...(options?.signal ? { signal: options.signal } : {}),
    ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** A port's public URL: the destination's `public_url_template` (the app needs a service for that port). */
export function machinePortUrl(info: FlyMachineInfo, input: RunnerPortRequestInput): RunnerPortResult {
  const request = parsePortInput(input);
  if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535)
    throw new RunnerError("invalid_request", `port must be 1..65535, got ${request.port}`);
  const url = info.config.public_url_template
    .replaceAll("{app}", info.config.app)
    .replaceAll("{port}", String(request.port))
    .replaceAll("{machine_id}", info.machineId);
  return { port: request.port, url };
}

/** Fly volume snapshots are not built: both session kinds say so the same way. */
export function snapshotsUnsupported(): never {
  throw new UnsupportedCapabilityError({
    providerId: "fly",
    capability: "snapshots",
    message:
      "fly: snapshots (Fly volume snapshots) are not built yet; a `volume` keeps the workspace across a stop/start",
  });
}

/** Fly suspend: the machine's memory and file system are kept and its compute stops (refused where Fly would). */
export async function suspendMachine(api: FlyApi, info: FlyMachineInfo, signal?: AbortSignal): Promise<void> {
  const why =
    info.config.suspend === false ? "this destination sets suspend: false" : suspendProblem(info.config);
  if (why)
    throw new UnsupportedCapabilityError({
      providerId: "fly",
      capability: "pause",
      message: `fly: this machine cannot be suspended: ${why}`,
    });
  const path = `/apps/${info.config.app}/machines/${info.machineId}`;
  const call = { idempotent: true, signal, machineId: info.machineId };
  await api.call("POST", `${path}/suspend`, { ...call, operation: "suspend machine" });
  await api.call("GET", `${path}/wait?state=suspended&timeout=60`, {
    ...call,
    operation: "wait for suspend",
  });
}

/** Destroys the machine, then deletes its workspace volume (a machine or volume already gone is fine). */
export async function destroyMachineAndVolume(
  api: FlyApi,
  info: FlyMachineInfo,
  destroy: (api: FlyApi, app: string, machineId: string, signal?: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  await destroy(api, info.config.app, info.machineId, signal);
  if (info.volumeId) await deleteVolume(api, info.config.app, info.volumeId, info.machineId, signal);
}
