import {
  checkPort,
  parseFileWriteInput,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  type RunnerExportOptions,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileWriteInput,
  type RunnerMount,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  SessionLifecycle,
} from "@roder/runner-contract";
import { type SandboxMountRef, unmountInSandbox } from "@roder/runner-storage";
import type { E2bCommandContext, RunningCommand, SdkSandbox } from "./e2b-command-follow.js";
import { attachE2bCommand, cancelE2bCommand, startE2bCommand } from "./e2b-commands.js";
import type { E2bDestinationConfig } from "./e2b-config.js";
import { mapE2bError, mapE2bFileError } from "./e2b-errors.js";
import { type E2bFilesContext, exportE2bArtifact, readE2bFile, writeE2bFile } from "./e2b-files.js";
import { E2bKeepAlive } from "./e2b-keepalive.js";
import { e2bSessionMetadata } from "./e2b-session-metadata.js";

export class E2bSession implements RemoteRunnerSession {
  /** Open, paused (until resumed from its state), closed: the guard of every method. */
  private readonly life = new SessionLifecycle({
    providerId: "e2b",
    sessionId: () => this.sandbox.sandboxId,
    noun: "sandbox",
  });
  private readonly running = new Map<string, RunningCommand>();
  /** Moves the sandbox's timeout while the session is used (see E2bKeepAlive). */
  private readonly keepAlive: E2bKeepAlive;
  /** What the command and file modules use of this session. */
  private readonly ctx: E2bCommandContext & E2bFilesContext;

  constructor(
    readonly sandbox: SdkSandbox,
    readonly info: {
      destinationId: string;
      config: E2bDestinationConfig;
      apiKeyEnv: string;
      env: Record<string, string | undefined>;
      /** The session's idle time: the sandbox's E2B timeout is moved to now + ttlMs while it is used. */
      ttlMs: number;
      /** How often, at most, the timeout is moved. */
      keepAliveIntervalMs: number;
      /** `Sandbox.setTimeout(ms)`. */
      extend: (ms: number) => Promise<void>;
      /** `Sandbox.pause()` (with the API key of this call). */
      pause: (signal?: AbortSignal) => Promise<void>;
      kill: () => Promise<void>;
      snapshot: () => Promise<RunnerSnapshotRef>;
      /** Bucket mounts of the manifest (secret refs only), mounted in the sandbox at create. */
      mounts: RunnerMount[];
      /** Where they are mounted (unmounted, write-back drained, at close). */
      mounted: SandboxMountRef[];
    },
  ) {
    this.keepAlive = new E2bKeepAlive({
      ttlMs: info.ttlMs,
      intervalMs: info.keepAliveIntervalMs,
      extend: (ms) => info.extend(ms),
      map: (error) => this.map(error, "extend the sandbox timeout"),
    });
    this.ctx = {
      sandbox,
      root: info.config.workspace_root,
      running: this.running,
      map: (error, operation) => this.map(error, operation),
      fileError: (error, operation, path) =>
        mapE2bFileError(error, { operation, path, sandboxId: sandbox.sandboxId, apiKeyEnv: info.apiKeyEnv }),
      touch: () => this.keepAlive.touch(),
      updateKeepAlive: () => this.updateKeepAlive(),
      session: this,
    };
  }

  private map(error: unknown, operation: string): unknown {
    return mapE2bError(error, {
      operation,
      sandboxId: this.sandbox.sandboxId,
      apiKeyEnv: this.info.apiKeyEnv,
    });
  }

  private ensureOpen(options?: RunnerCallOptions, operation?: string): void {
    this.life.ensureOpen(options?.signal, operation);
  }

  /** Starts or stops the keep-alive timer as commands start and end. */
  private updateKeepAlive(): void {
    this.keepAlive.update(this.running.size > 0 && !this.life.closed && !this.life.paused);
  }

  state(): RunnerSessionState {
    return {
      provider_id: "e2b",
      session_id: this.sandbox.sandboxId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: e2bSessionMetadata({
        sandboxId: this.sandbox.sandboxId,
        config: this.info.config,
        mounts: this.info.mounts,
        mounted: this.info.mounted,
      }),
    };
  }

  /**
   * Starts a command and follows it. `stdin: true` keeps its stdin open (envd's pipe: `commands.sendStdin`,
   * `commands.closeStdin`); `pty: { cols, rows }` runs it on a terminal of that size (`pty.create`, `sendInput`,
   * `resize`): E2B's PTY always starts an interactive login shell, into which a launch line is typed behind a
   * start marker (see `PtyLaunch`), so the handle's output is the program's alone.
   */
  startCommand: NonNullable<RemoteRunnerSession["startCommand"]> = this.life.guard((i, o) =>
    startE2bCommand(this.ctx, i, o),
  );

  /**
   * Follows a command started by `startCommand` again, from this or any other client: envd keeps a process
   * whose client went away; it is found by its RODER_COMMAND_ID env. Output starts at the moment of
   * attaching (envd does not replay); an ended command is gone (CommandNotFoundError). A command started with
   * stdin or a terminal can be written to (and resized) through the new handle too.
   */
  attachCommand: NonNullable<RemoteRunnerSession["attachCommand"]> = this.life.guard((id, o) =>
    attachE2bCommand(this.ctx, id, o),
  );

  async runCommand(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    return (await this.startCommand(request, options)).wait();
  }

  cancelCommand: RemoteRunnerSession["cancelCommand"] = this.life.guard((id) =>
    cancelE2bCommand(this.ctx, id),
  );

  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen(options, "readFile");
    return readE2bFile(this.ctx, request, options);
  }

  /**
   * Writes anywhere in the sandbox's view, atomically: the bytes land in a temp file of the target's directory
   * (a random name), then a rename replaces the target — a reader never sees half a file, and a symbolic link
   * at the target is replaced rather than written through.
   */
  async writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen(options, "writeFile");
    return writeE2bFile(this.ctx, parseFileWriteInput(input), options);
  }

  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.ensureOpen();
    const request = parsePortInput(input);
    checkPort(request.port);
    return { port: request.port, url: `https://${this.sandbox.getHost(request.port)}` };
  }

  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.ensureOpen(options, "exportArtifact");
    const { config, env } = this.info;
    return exportE2bArtifact(this.ctx, this, { artifacts: config.artifacts, env }, input, options);
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef> {
    this.ensureOpen(options, "snapshot");
    await this.keepAlive.touch();
    return this.info.snapshot();
  }

  /** E2B pause: files, processes (mounts included) and memory are kept; `resumeSession(state())` resumes. */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen(options, "pause");
    try {
      await this.info.pause(options?.signal);
    } catch (error) {
      throw this.map(error, "pause sandbox");
    }
    this.life.markPaused();
    this.updateKeepAlive();
  }

  async close(): Promise<void> {
    if (this.life.closed) return;
    if (this.life.paused) {
      // Nothing runs in a paused sandbox to drain or unmount: it goes as it is.
      this.life.markClosed();
      this.updateKeepAlive();
      await this.info.kill();
      return;
    }
    // Uploads still in rclone's write-back reach the bucket before the sandbox goes.
    for (const ref of this.info.mounted.splice(0).reverse())
      await unmountInSandbox(this, ref).catch(() => {});
    this.life.markClosed();
    this.updateKeepAlive();
    for (const e of this.running.values()) await e.handle.kill().catch(() => false);
    await this.info.kill();
  }
}
