import {
  CancelledError,
  checkPort,
  ProviderApiError,
  parseArtifactExportInput,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  RunnerError,
  type RunnerExportOptions,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  SessionNotFoundError,
  sandboxViewPath,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { exportArtifact, parseArtifactTarget, sessionArtifactSource } from "@roder/runner-storage";
import type { FlyApi, FlyMachine } from "./fly-api.js";
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
  checkPort(request.port);
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

/** Stops, then destroys the machine (force); a machine already gone is fine. */
export async function destroyMachine(
  api: FlyApi,
  app: string,
  machineId: string,
  signal?: AbortSignal,
): Promise<void> {
  const path = `/apps/${app}/machines/${machineId}`;
  try {
    await api.call("POST", `${path}/stop`, {
      idempotent: true,
      operation: "stop machine",
      signal,
      machineId,
    });
  } catch (error) {
    if (SessionNotFoundError.isInstance(error)) return;
  }
  try {
    await api.call("DELETE", `${path}?force=true`, {
      idempotent: true,
      operation: "destroy machine",
      signal,
      machineId,
    });
  } catch (error) {
    if (!SessionNotFoundError.isInstance(error)) throw error;
  }
}

/** Destroys the machine, then deletes its workspace volume (a machine or volume already gone is fine). */
export async function destroyMachineAndVolume(
  api: FlyApi,
  info: FlyMachineInfo,
  signal?: AbortSignal,
): Promise<void> {
  await destroyMachine(api, info.config.app, info.machineId, signal);
  if (info.volumeId) await deleteVolume(api, info.config.app, info.volumeId, info.machineId, signal);
}

/**
 * Waits until the machine is started, within `deadline` (ms since epoch) exactly: each `wait` asks for at most
 * the time left (whole seconds, 1–60, Fly's bounds), its 408 is not retried inside the API client, and retries
 * of other failures stop at the deadline too.
 */
export async function waitStarted(
  a: FlyApi,
  config: FlyDestinationConfig,
  id: string,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  const timedOut = () =>
    new RunnerError("create_timeout", `fly machine ${id} did not start within the create timeout`);
  const overall = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
  const bounded = signal ? AbortSignal.any([signal, overall]) : overall;
  for (;;) {
    if (signal?.aborted) throw new CancelledError({ operation: "create session" });
    const leftMs = deadline - Date.now();
    if (leftMs <= 0 || overall.aborted) throw timedOut();
    const waitS = Math.max(1, Math.min(60, Math.floor(leftMs / 1000)));
    try {
      await a.call("GET", `/apps/${config.app}/machines/${id}/wait?state=started&timeout=${waitS}`, {
        idempotent: true,
        retry408: false,
        operation: "wait for machine",
        signal: bounded,
        machineId: id,
        timeoutMs: (waitS + 10) * 1000,
      });
      return;
    } catch (error) {
      if (overall.aborted && !signal?.aborted) throw timedOut();
      if (ProviderApiError.isInstance(error) && error.statusCode === 408) continue;
      if (CancelledError.isInstance(error)) throw error;
      const m = await getMachine(a, config, id, bounded).catch(() => null);
      if (m && (m.state === "failed" || m.state === "launch_failed" || m.state === "destroyed"))
        throw new ProviderApiError(
          {
            providerId: "fly",
            isRetryable: false,
            message: `machine ${id} failed to start (state ${m.state})`,
          },
          { cause: error },
        );
      throw error;
    }
  }
}

/** The machine as the API describes it now. */
export function getMachine(
  a: FlyApi,
  config: FlyDestinationConfig,
  id: string,
  signal?: AbortSignal,
): Promise<FlyMachine> {
  return a.call<FlyMachine>("GET", `/apps/${config.app}/machines/${id}`, {
    idempotent: true,
    operation: "get machine",
    signal,
    machineId: id,
  });
}

/** The machine's state when it can no longer run the agent (stopped, failed, gone), else null. */
export async function machineDown(
  a: FlyApi,
  config: FlyDestinationConfig,
  id: string,
): Promise<string | null> {
  const m = await getMachine(a, config, id).catch((error) =>
    SessionNotFoundError.isInstance(error) ? ({ state: "gone" } as FlyMachine) : null,
  );
  return m && !["started", "starting", "created"].includes(m.state) ? `machine ${m.state}` : null;
}
