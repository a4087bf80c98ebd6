import { RunnerError } from "./errors/runner-error.js";
import type { RunnerLimits } from "./limits.js";
import type {
  RunnerArtifactExportRequestInput,
  RunnerDestinationInput,
  RunnerFileWriteInput,
  RunnerPortRequestInput,
} from "./method-inputs.js";
import type { MountPlanEntry } from "./mount-plan.js";
import type {
  RunnerArtifactExportResult,
  RunnerCapabilities,
  RunnerCommandRequestInput,
  RunnerCommandResult,
  RunnerFileReadRequest,
  RunnerFileReadResult,
  RunnerPortResult,
  RunnerSessionState,
  RunnerSnapshotRef,
} from "./schemas.js";

/** A signal name, as Node's `NodeJS.Signals` (declared here so the public types need no `@types/node`). */
export type RunnerSignal =
  | "SIGABRT"
  | "SIGALRM"
  | "SIGBUS"
  | "SIGCHLD"
  | "SIGCONT"
  | "SIGFPE"
  | "SIGHUP"
  | "SIGILL"
  | "SIGINT"
  | "SIGIO"
  | "SIGIOT"
  | "SIGKILL"
  | "SIGPIPE"
  | "SIGPOLL"
  | "SIGPROF"
  | "SIGPWR"
  | "SIGQUIT"
  | "SIGSEGV"
  | "SIGSTKFLT"
  | "SIGSTOP"
  | "SIGSYS"
  | "SIGTERM"
  | "SIGTRAP"
  | "SIGTSTP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGUNUSED"
  | "SIGURG"
  | "SIGUSR1"
  | "SIGUSR2"
  | "SIGVTALRM"
  | "SIGWINCH"
  | "SIGXCPU"
  | "SIGXFSZ"
  | "SIGBREAK"
  | "SIGLOST"
  | "SIGINFO";

/** Per-call options. Every provider honours `signal` (aborting rejects with `CancelledError`). */
export interface RunnerCallOptions {
  signal?: AbortSignal;
}

/**
 * Where an artifact export stands. `preparing`: the file is being found (a directory archived); `uploading`:
 * `bytes` of `total` have reached the store (parts as they complete; a single PUT reports 0 then `total`);
 * `verifying`: every byte is up and the store's copy is being checked; `done`: verified and visible.
 */
export interface RunnerExportProgress {
  phase: "preparing" | "uploading" | "verifying" | "done";
  /** Bytes the store has acknowledged so far. */
  bytes: number;
  /** The artifact's size (a directory's archive size), known once `preparing` is over. */
  total?: number;
}

/** `exportArtifact` options: besides `signal`, a progress callback (called often; keep it cheap, it must not throw). */
export interface RunnerExportOptions extends RunnerCallOptions {
  onProgress?: (progress: RunnerExportProgress) => void;
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
  kill(signal?: RunnerSignal): Promise<boolean>;
  /**
   * Stops following the command without killing it: `output` ends and `wait()` still resolves. Where the
   * provider can reattach (`provider.limits().attach`), `attachCommand(commandId)` follows it again.
   */
  detach?(): Promise<void>;
  /**
   * On a handle from `attachCommand` that replays retained output: how many bytes of each stream come before
   * the replay (dropped from the front of the provider's log). A client that already saw N bytes of a stream
   * skips `N - offset` of the replay to continue exactly where it was.
   */
  readonly replayOffset?: { stdout: number; stderr: number };
  /**
   * Writes to the command's stdin (started with `stdin: true` or `pty`): text as UTF-8, or bytes. Resolves once
   * the runner has taken the bytes; rejects if the command has ended or its stdin is closed.
   */
  write?(data: string | Uint8Array): Promise<void>;
  /** Closes the command's stdin (`cat` then ends); on a terminal, sends end-of-file. */
  closeStdin?(): Promise<void>;
  /** Resizes the command's terminal (started with `pty`); the program gets SIGWINCH. */
  resize?(cols: number, rows: number): Promise<void>;
}

/**
 * `startCommand` input: a command request (the wire type), and how it is attached. `stdin: true` keeps its stdin
 * open for `handle.write()` / `handle.closeStdin()`; `pty` runs it on a terminal of that size (`test -t 1` holds;
 * stdout and stderr both arrive as `stdout`, as from a terminal) with `handle.resize()`. Where a provider cannot,
 * `startCommand` rejects with `UnsupportedCapabilityError` (capability `stdin` or `pty`).
 */
export type RunnerStartCommandInput = RunnerCommandRequestInput & {
  stdin?: boolean;
  pty?: { cols: number; rows: number };
};

/**
 * A provider of remote runner sessions (`RemoteRunnerProvider` in Rust). Methods are camelCase; all values
 * are the wire types.
 */
export interface RemoteRunnerProvider {
  readonly id: string;
  capabilities(): RunnerCapabilities;
  /** Setup guidance when the provider is installed but not yet usable; names env variables, never values. */
  setupHint(): string | null;
  /**
   * The limits that bite users (largest file, streaming, attach, cancellation, pause, what paths address), known
   * before a session exists. Given a destination, that destination's where they differ by config (Fly's agent and
   * exec modes); without one, the provider's default destination's.
   */
  limits(destination?: RunnerDestinationInput): RunnerLimits;
  /**
   * How each mount of the destination's manifest would be satisfied (strategy, tools, credential variables and
   * which of them are unset in the provider's environment), so a host can refuse a destination before paying for a
   * sandbox. Agrees with `capabilities().mounts` and `validateDestination`.
   */
  planMounts(destination: RunnerDestinationInput): MountPlanEntry[];
  /**
   * Creates a session. Only `config` is needed: `id` is generated, `provider_id` defaults to this provider's
   * id (another provider's id is refused) and `default_manifest` to an empty one.
   */
  createSession(
    destination: RunnerDestinationInput,
    options?: RunnerCallOptions,
  ): Promise<RemoteRunnerSession>;
  /** Fails with a typed error when the destination cannot work with this provider; resolves otherwise. */
  validateDestination(destination: RunnerDestinationInput, options?: RunnerCallOptions): Promise<void>;
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
  /** `contents` is text (written as UTF-8) or bytes. */
  writeFile(request: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void>;
  exposePort(request: RunnerPortRequestInput, options?: RunnerCallOptions): Promise<RunnerPortResult>;
  /** Fails with `UnsupportedCapabilityError` where the provider has no artifact support (Rust's default). */
  exportArtifact(
    request: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult>;
  snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef | null>;
  /** Idempotent. */
  close(options?: RunnerCallOptions): Promise<void>;
  /** Streaming command handle (optional capability; see the provider's limits). */
  startCommand?(request: RunnerStartCommandInput, options?: RunnerCallOptions): Promise<RunnerCommandHandle>;
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
   * suspend; see `provider.limits().pause`). Later calls on this object reject with a
   * `session_paused` RunnerError; `provider.resumeSession(state())` resumes it, from any process.
   */
  pause?(options?: RunnerCallOptions): Promise<void>;
  /**
   * Reads a file (or a byte range of it) as a stream, with bounded memory whatever its size. Same paths, checks
   * and errors as `readFile` (which it extends with ranges); the errors of opening the file come from this call,
   * not from the body. `openFileStream(session, …)` falls back on `readFile` where a provider lacks it.
   */
  readFileStream?(request: RunnerFileStreamRequest, options?: RunnerCallOptions): Promise<RunnerFileStream>;
  /**
   * Writes a file from a stream of chunks, with bounded memory whatever its size. Same paths, checks and errors as
   * `writeFile`, and as atomic: the file is replaced only once every byte is written; a failed or aborted write
   * (the body throws, `signal` aborts) leaves the old file as it was. Resolves with the bytes written.
   */
  writeFileStream?(
    request: { path: string },
    body: AsyncIterable<Uint8Array>,
    options?: RunnerCallOptions,
  ): Promise<{ bytes: number }>;
}

/** The optional methods of `RemoteRunnerSession`. */
export type RunnerSessionOptionalMethod =
  | "startCommand"
  | "attachCommand"
  | "pause"
  | "readFileStream"
  | "writeFileStream";

/** `readFileStream` input: a path, and optionally a byte range of it. */
export interface RunnerFileStreamRequest {
  path: string;
  /** First byte to read (default 0). Past the end of the file: an empty body. */
  offset?: number;
  /** Bytes to read at most (default: to the end of the file). */
  length?: number;
}

/** A file being read (`readFileStream`): its size and its bytes from `offset`. */
export interface RunnerFileStream {
  path: string;
  /** The whole file's size in bytes, when the read began. */
  size: number;
  /** Where `body` starts in the file. */
  offset: number;
  /** Bytes in `body`: `min(length, size - offset)`. */
  length: number;
  /**
   * The bytes, in chunks as they are read (memory stays bounded whatever the file's size). Iterate once; leaving
   * the loop early ends the read. A file changed while it is read: the bytes are as read, `length` at most.
   */
  body: AsyncIterable<Uint8Array>;
}

/** A session type whose optional methods `K` are present (what a provider that implements them returns). */
export type RemoteRunnerSessionWith<K extends RunnerSessionOptionalMethod> = RemoteRunnerSession &
  Required<Pick<RemoteRunnerSession, K>>;

/** A provider whose sessions are `S` (each factory returns its own: `createLocalProvider()` gives `LocalSession`s). */
export interface RemoteRunnerProviderOf<S extends RemoteRunnerSession> extends RemoteRunnerProvider {
  createSession(destination: RunnerDestinationInput, options?: RunnerCallOptions): Promise<S>;
  resumeSession(state: RunnerSessionState, options?: RunnerCallOptions): Promise<S>;
}

/** Reads a file as text (UTF-8; invalid sequences become U+FFFD). */
export async function readText(
  session: Pick<RemoteRunnerSession, "readFile">,
  path: string,
  options?: RunnerCallOptions,
): Promise<string> {
  const { contents } = await session.readFile({ path }, options);
  return new TextDecoder().decode(contents);
}

/**
 * `session.readFileStream(request)` where the provider has it; elsewhere `readFile` and the range sliced out (the
 * whole file is then read into memory once).
 */
export async function openFileStream(
  session: Pick<RemoteRunnerSession, "readFile" | "readFileStream">,
  request: RunnerFileStreamRequest,
  options?: RunnerCallOptions,
): Promise<RunnerFileStream> {
  checkRange(request);
  if (typeof session.readFileStream === "function") return session.readFileStream(request, options);
  const { contents } = await session.readFile({ path: request.path }, options);
  const offset = Math.min(request.offset ?? 0, contents.byteLength);
  const end =
    request.length === undefined
      ? contents.byteLength
      : Math.min(contents.byteLength, offset + request.length);
  const part = contents.subarray(offset, end);
  return {
    path: request.path,
    size: contents.byteLength,
    offset: request.offset ?? 0,
    length: part.byteLength,
    body: (async function* () {
      if (part.byteLength > 0) yield part;
    })(),
  };
}

/**
 * `session.writeFileStream(request, body)` where the provider has it; elsewhere the chunks are gathered and written
 * with `writeFile` (the whole file is then held in memory once).
 */
export async function writeFileFromStream(
  session: Pick<RemoteRunnerSession, "writeFile" | "writeFileStream">,
  request: { path: string },
  body: AsyncIterable<Uint8Array>,
  options?: RunnerCallOptions,
): Promise<{ bytes: number }> {
  if (typeof session.writeFileStream === "function") return session.writeFileStream(request, body, options);
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    parts.push(chunk);
    bytes += chunk.byteLength;
  }
  const contents = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    contents.set(p, at);
    at += p.byteLength;
  }
  await session.writeFile({ path: request.path, contents }, options);
  return { bytes };
}

/** A range's numbers must be whole and not negative (typed `invalid_request` otherwise). */
export function checkRange(request: RunnerFileStreamRequest): void {
  for (const key of ["offset", "length"] as const) {
    const v = request[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
      throw new RunnerError("invalid_request", `${key} must be a whole number of bytes >= 0, got ${v}`);
  }
}
