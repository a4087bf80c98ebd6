import type {
  RemoteRunnerSession,
  RunnerArtifactExportRequestInput,
  RunnerArtifactExportResult,
  RunnerCallOptions,
  RunnerCommandHandle,
  RunnerCommandRequestInput,
  RunnerCommandResult,
  RunnerExportOptions,
  RunnerFileReadRequest,
  RunnerFileReadResult,
  RunnerFileStream,
  RunnerFileStreamRequest,
  RunnerFileWriteInput,
  RunnerPortRequestInput,
  RunnerPortResult,
  RunnerSessionState,
  RunnerSnapshotRef,
  RunnerStartCommandInput,
} from "@roder/runner-contract";
import type { HttpRunnerSession } from "@roder/runner-http";
import { type SandboxMountRef, unmountInSandbox } from "@roder/runner-storage";
import { z } from "zod";
import type { FlyApi } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";
import {
  destroyMachineAndVolume,
  ensureMachineOpen,
  exportFromMachine,
  machinePortUrl,
  snapshotsUnsupported,
  suspendMachine,
} from "./fly-machine-ops.js";
import { flySessionMetadata } from "./fly-session-metadata.js";

/** The agent session's workspace, from its (HTTP runner) state's metadata: decoded, never cast. */
const AgentMetadataSchema = z.object({ workspace_root: z.string().nullish() }).nullish();
function agentWorkspaceRoot(metadata: unknown): string {
  const r = AgentMetadataSchema.safeParse(metadata);
  return (r.success ? r.data?.workspace_root : undefined) ?? "";
}

/**
 * A Fly session in agent mode: the machine runs `roder-runner serve`, and every command, file and stream goes
 * to it over the HTTP runner protocol (packages/http's client) through the app's public address, pinned to the
 * machine with `fly-force-instance-id`. The Machines API is used only to create, suspend and destroy.
 */
export class FlyAgentSession implements RemoteRunnerSession {
  private readonly at = { closed: false, paused: false };

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
    return agentWorkspaceRoot(this.agent.state().metadata);
  }

  state(): RunnerSessionState {
    return {
      provider_id: "fly",
      session_id: this.info.machineId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: flySessionMetadata({
        machineId: this.info.machineId,
        config: this.info.config,
        workspaceRoot: this.root,
        mounted: this.info.mounted,
        agent: { sessionId: this.agent.state().session_id, nonce: this.info.nonce },
        volumeId: this.info.volumeId,
      }),
    };
  }

  private ensureOpen(): void {
    ensureMachineOpen(this.info, this.at);
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
    this.at.paused = true;
  }

  /** Closes the agent session (its processes, mounts), destroys the machine, deletes the volume. Idempotent. */
  async close(options?: RunnerCallOptions): Promise<void> {
    if (this.at.closed) return;
    if (!this.at.paused) {
      for (const ref of this.info.mounted.splice(0).reverse())
        await unmountInSandbox(this, ref).catch(() => {});
      await this.agent.close(options).catch(() => {});
    }
    this.at.closed = true;
    await destroyMachineAndVolume(this.api, this.info, options?.signal);
  }
}
