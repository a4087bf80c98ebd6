import type {
  RunnerArtifactExportRequest,
  RunnerArtifactExportResult,
  RunnerCapabilities,
  RunnerCommandRequestInput,
  RunnerCommandResult,
  RunnerDestination,
  RunnerFileReadRequest,
  RunnerFileReadResult,
  RunnerFileWriteRequest,
  RunnerPortRequest,
  RunnerPortResult,
  RunnerSessionState,
  RunnerSnapshotRef,
} from "./schemas.js";

/** Per-call options. Every provider honours `signal` (aborting rejects with `CancelledError`). */
export interface RunnerCallOptions {
  signal?: AbortSignal;
}

/** A chunk of command output as it arrives. */
export interface RunnerOutputChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
}

/** A running command (see `RemoteRunnerSession.startCommand`). */
export interface RunnerCommandHandle {
  readonly commandId: string;
  /** Output chunks as they arrive; ends when the command ends. Iterate once. */
  readonly output: AsyncIterable<RunnerOutputChunk>;
  /** Resolves with the same result `runCommand` would have returned. */
  wait(): Promise<RunnerCommandResult>;
  /** Sends a signal to the command's process group (default SIGKILL). Resolves `true` if it was running. */
  kill(signal?: NodeJS.Signals): Promise<boolean>;
  /**
   * Stops following the command without killing it: `output` ends and `wait()` still resolves. Where the
   * provider can reattach (`describeProviderLimits(id).attach`), `attachCommand(commandId)` follows it again.
   */
  detach?(): Promise<void>;
  /**
   * On a handle from `attachCommand` that replays retained output: how many bytes of each stream come before
   * the replay (dropped from the front of the provider's log). A client that already saw N bytes of a stream
   * skips `N - offset` of the replay to continue exactly where it was.
   */
  readonly replayOffset?: { stdout: number; stderr: number };
}

/**
 * A provider of remote runner sessions (`RemoteRunnerProvider` in Rust). Methods are camelCase; all values
 * are the wire types.
 */
export interface RemoteRunnerProvider {
  readonly id: string;
  capabilities(): RunnerCapabilities;
  /** Setup guidance when the provider is installed but not yet usable; names env variables, never values. */
  setupHint(): string | null;
  createSession(destination: RunnerDestination, options?: RunnerCallOptions): Promise<RemoteRunnerSession>;
  /** Fails with a typed error when the destination cannot work with this provider; resolves otherwise. */
  validateDestination(destination: RunnerDestination, options?: RunnerCallOptions): Promise<void>;
  resumeSession(state: RunnerSessionState, options?: RunnerCallOptions): Promise<RemoteRunnerSession>;
}

/** A live session (`RemoteRunnerSession` in Rust). */
export interface RemoteRunnerSession {
  state(): RunnerSessionState;
  /**
   * Runs argv (not a shell line). A non-zero exit is a result, not an error. When `timeout_ms` passes, the
   * command is killed and the result has `exit_code: null` and a timeout marker (see `commandOutcome`).
   */
  runCommand(request: RunnerCommandRequestInput, options?: RunnerCallOptions): Promise<RunnerCommandResult>;
  /** `true` when the command was running and has been killed; `false` for an unknown or finished id. */
  cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean>;
  readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult>;
  writeFile(request: RunnerFileWriteRequest, options?: RunnerCallOptions): Promise<void>;
  exposePort(request: RunnerPortRequest, options?: RunnerCallOptions): Promise<RunnerPortResult>;
  /** Fails with `UnsupportedCapabilityError` where the provider has no artifact support (Rust's default). */
  exportArtifact(
    request: RunnerArtifactExportRequest,
    options?: RunnerCallOptions,
  ): Promise<RunnerArtifactExportResult>;
  snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef | null>;
  /** Idempotent. */
  close(options?: RunnerCallOptions): Promise<void>;
  /** Streaming command handle (optional capability; see the provider's limits). */
  startCommand?(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandHandle>;
  /**
   * Follows a command started with `startCommand` again: from another session object resumed from `state()`,
   * after `detach()`, or (where limits say `attach: "any-client"`) from another process after this one
   * disconnected or crashed. `output` replays what the provider retained (`attach_replay: "retained"`) or
   * starts at the moment of attaching (`"live"`), then follows until the command ends. Rejects with
   * `CommandNotFoundError` for an id the session does not know.
   */
  attachCommand?(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle>;
  /**
   * Pauses the sandbox: its files, processes and memory are kept and its compute stops (E2B pause, Fly
   * suspend; see `describeProviderLimits(id).pause`). Later calls on this object reject with a
   * `session_paused` RunnerError; `provider.resumeSession(state())` resumes it, from any process.
   */
  pause?(options?: RunnerCallOptions): Promise<void>;
}
