import {
  parseArtifactExportInput,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  RunnerError,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileWriteInput,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionNotFoundError,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import type { HttpRunnerSession } from "@roder/runner-http";
import {
  exportArtifact,
  parseArtifactTarget,
  type SandboxMountRef,
  sessionArtifactSource,
  unmountInSandbox,
} from "@roder/runner-storage";
import type { FlyApi } from "./fly-api.js";
import { type FlyDestinationConfig, suspendProblem } from "./fly-config.js";
import { destroyMachine } from "./fly-session.js";
import { deleteVolume } from "./fly-volumes.js";

/**
 * A Fly session in agent mode: the machine runs `roder-runner serve`, and every command, file and stream goes
 * to it over the HTTP runner protocol (packages/http's client) through the app's public address, pinned to the
 * machine with `fly-force-instance-id`. The Machines API is used only to create, suspend and destroy.
 */
export class FlyAgentSession implements RemoteRunnerSession {
  private closed = false;
  private paused = false;

  constructor(
    private readonly api: FlyApi,
    private readonly agent: HttpRunnerSession,
    readonly info: {
      machineId: string;
      destinationId: string;
      config: FlyDestinationConfig;
      env: Record<string, string | undefined>;
      /** Derives the agent's token with the provider's secret (the state holds only this). */
      nonce: string;
      /** The workspace volume, deleted at close. */
      volumeId?: string | undefined;
      mounted: SandboxMountRef[];
    },
  ) {}

  /** The agent session's workspace (under `workspace_root`, on the volume when there is one). */
  get root(): string {
    return (this.agent.state().metadata as { workspace_root?: string | null }).workspace_root ?? "";
  }

  state(): RunnerSessionState {
    return {
      provider_id: "fly",
      session_id: this.info.machineId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: {
        mode: "agent",
        machine_id: this.info.machineId,
        app: this.info.config.app,
        workspace_root: this.root,
        config: this.info.config,
        agent_session_id: this.agent.state().session_id,
        agent_nonce: this.info.nonce,
        mounted: this.info.mounted,
        ...(this.info.volumeId ? { volume_id: this.info.volumeId } : {}),
      },
    };
  }

  private ensureOpen(): void {
    if (this.paused)
      throw new RunnerError(
        "session_paused",
        `machine ${this.info.machineId} is suspended: resume it with provider.resumeSession(session.state())`,
      );
    if (this.closed)
      throw new SessionNotFoundError({
        providerId: "fly",
        sessionId: this.info.machineId,
        message: `session (machine ${this.info.machineId}) is closed`,
      });
  }

  runCommand(input: RunnerCommandRequestInput, options?: RunnerCallOptions): Promise<RunnerCommandResult> {
    this.ensureOpen();
    return this.agent.runCommand(input, options);
  }

  startCommand(input: RunnerStartCommandInput, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    return this.agent.startCommand(input, options);
  }

  attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    return this.agent.attachCommand(commandId, options);
  }

  cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean> {
    this.ensureOpen();
    return this.agent.cancelCommand(commandId, options);
  }

  readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen();
    return this.agent.readFile(request, options);
  }

  writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    return this.agent.writeFile(input, options);
  }

  /** A port's public URL, as in exec mode: `public_url_template` (the app needs a service for that port). */
  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    const request = parsePortInput(input);
    this.ensureOpen();
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535)
      throw new RunnerError("invalid_request", `port must be 1..65535, got ${request.port}`);
    const url = this.info.config.public_url_template
      .replaceAll("{app}", this.info.config.app)
      .replaceAll("{port}", String(request.port))
      .replaceAll("{machine_id}", this.info.machineId);
    return { port: request.port, url };
  }

  /** The storage package's direct path, run through the agent: the machine uploads to a signed URL. */
  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerArtifactExportResult> {
    const request = parseArtifactExportInput(input);
    this.ensureOpen();
    if (this.info.config.artifacts === undefined)
      throw new UnsupportedCapabilityError({
        providerId: "fly",
        capability: "artifact_export",
        message: "fly: this destination has no artifacts bucket (config.artifacts)",
      });
    const target = parseArtifactTarget("fly", this.info.config.artifacts);
    const root = this.root;
    const path = request.path.startsWith("/") ? request.path : `${root}/${request.path}`;
    return exportArtifact({
      providerId: "fly",
      target,
      env: this.info.env,
      source: sessionArtifactSource(this, { tmpDir: `${root}/.roder/tmp` }),
      request,
      path,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async snapshot(): Promise<RunnerSnapshotRef | null> {
    throw new UnsupportedCapabilityError({
      providerId: "fly",
      capability: "snapshots",
      message:
        "fly: snapshots (Fly volume snapshots) are not built yet; a `volume` keeps the workspace across a stop/start",
    });
  }

  /** Fly suspend: memory and files kept, the agent and its commands go on after `resumeSession(state())`. */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    const why =
      this.info.config.suspend === false
        ? "this destination sets suspend: false"
        : suspendProblem(this.info.config);
    if (why)
      throw new UnsupportedCapabilityError({
        providerId: "fly",
        capability: "pause",
        message: `fly: this machine cannot be suspended: ${why}`,
      });
    const path = `/apps/${this.info.config.app}/machines/${this.info.machineId}`;
    await this.api.call("POST", `${path}/suspend`, {
      idempotent: true,
      operation: "suspend machine",
      signal: options?.signal,
      machineId: this.info.machineId,
    });
    await this.api.call("GET", `${path}/wait?state=suspended&timeout=60`, {
      idempotent: true,
      operation: "wait for suspend",
      signal: options?.signal,
      machineId: this.info.machineId,
    });
    this.paused = true;
  }

  /** Closes the agent session (its processes, mounts), destroys the machine, deletes the volume. Idempotent. */
  async close(options?: RunnerCallOptions): Promise<void> {
    if (this.closed) return;
    if (!this.paused) {
      for (const ref of this.info.mounted.splice(0).reverse())
        await unmountInSandbox(this, ref).catch(() => {});
      await this.agent.close(options).catch(() => {});
    }
    this.closed = true;
    await destroyMachine(this.api, this.info.config.app, this.info.machineId, options?.signal);
    if (this.info.volumeId)
      await deleteVolume(
        this.api,
        this.info.config.app,
        this.info.volumeId,
        this.info.machineId,
        options?.signal,
      );
  }
}
