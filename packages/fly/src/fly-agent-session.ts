import {
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  RunnerError,
  type RunnerExportOptions,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileStream,
  type RunnerFileStreamRequest,
  type RunnerFileWriteInput,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionNotFoundError,
} from "@roder/runner-contract";
import type { HttpRunnerSession } from "@roder/runner-http";
import { type SandboxMountRef, unmountInSandbox } from "@roder/runner-storage";
import type { FlyApi } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";
import {
  destroyMachineAndVolume,
  exportFromMachine,
  machinePortUrl,
  snapshotsUnsupported,
  suspendMachine,
} from "./fly-machine-ops.js";
import { destroyMachine } from "./fly-session.js";

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

  /** Streamed through the agent's file routes (byte ranges; bounded memory both ways). */
  readFileStream(request: RunnerFileStreamRequest, options?: RunnerCallOptions): Promise<RunnerFileStream> {
    this.ensureOpen();
    return this.agent.readFileStream(request, options);
  }

  writeFileStream(
    request: { path: string },
    body: AsyncIterable<Uint8Array>,
    options?: RunnerCallOptions,
  ): Promise<{ bytes: number }> {
    this.ensureOpen();
    return this.agent.writeFileStream(request, body, options);
  }

  /** A port's public URL, as in exec mode: `public_url_template` (the app needs a service for that port). */
  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.ensureOpen();
    return machinePortUrl(this.info, input);
  }

  /** The storage package's direct path, run through the agent: the machine uploads to a signed URL. */
  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.ensureOpen();
    return exportFromMachine(this, this.info, this.root, input, options);
  }

  async snapshot(): Promise<RunnerSnapshotRef | null> {
    return snapshotsUnsupported();
  }

  /** Fly suspend: memory and files kept, the agent and its commands go on after `resumeSession(state())`. */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    await suspendMachine(this.api, this.info, options?.signal);
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
    await destroyMachineAndVolume(this.api, this.info, destroyMachine, options?.signal);
  }
}
