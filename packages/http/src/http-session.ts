import {
  CancelledError,
  checkPty,
  checkRange,
  codecs,
  confinePath,
  parseArtifactExportInput,
  parseCommandInput,
  parseFileWriteInput,
  parsePortInput,
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
  SessionLifecycle,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { followCommand } from "./http-command-stream.js";
import { readFileStream, writeFileStream } from "./http-file-streams.js";
import type { HttpTransport } from "./http-transport.js";
import { readExportStream, type SessionWire } from "./http-wire.js";

export class HttpRunnerSession implements RemoteRunnerSession {
  /** Open until closed: every method but close refuses after (`SessionNotFoundError`). */
  private readonly life: SessionLifecycle;

  constructor(
    private readonly t: HttpTransport,
    private readonly info: {
      providerId: string;
      sessionId: string;
      destinationId: string;
      baseUrl: string;
      workspaceRoot: string | null;
      /**
       * `sandbox`: the server's backend is isolated and its file API addresses the sandbox's whole view (the
       * server confines); `workspace`: confined to the workspace here too, before anything is sent.
       */
      fileScope: "sandbox" | "workspace";
    },
  ) {
    this.life = new SessionLifecycle({ providerId: info.providerId, sessionId: () => info.sessionId });
  }

  private get path(): string {
    return `/sessions/${encodeURIComponent(this.info.sessionId)}`;
  }

  /** What the command-stream and file-stream modules need of this session. */
  private get wire(): SessionWire {
    return { t: this.t, path: this.path, providerId: this.info.providerId, sessionId: this.info.sessionId };
  }

  /** Client-side confinement when the server told us the root (the server confines again). */
  private confine(path: string, access: "read" | "write" | "cwd"): void {
    if (this.info.fileScope === "sandbox") {
      if (path.includes("\u0000")) throw new RunnerError("invalid_request", "paths cannot contain NUL bytes");
      return;
    }
    if (this.info.workspaceRoot && access !== "read")
      confinePath(path, { root: this.info.workspaceRoot, access });
    else if (path.includes("\u0000")) confinePath(path, { root: this.info.workspaceRoot ?? "/", access });
  }

  state(): RunnerSessionState {
    return {
      provider_id: this.info.providerId,
      session_id: this.info.sessionId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: {
        base_url: this.info.baseUrl,
        provider: this.info.providerId,
        workspace_root: this.info.workspaceRoot,
        file_scope: this.info.fileScope,
      },
    };
  }

  async runCommand(
    input: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    this.life.ensureOpen();
    const request = parseCommandInput(input);
    if (request.cwd !== null) this.confine(request.cwd, "cwd");
    // Never retried: a command may have run even when the answer was lost.
    const res = await this.t.request("POST", `${this.path}/commands`, {
      json: codecs.RunnerCommandRequest.encode(request),
      signal: options?.signal,
      idempotent: false,
      operation: "run command",
      buffer: true,
      sessionId: this.info.sessionId,
    });
    return codecs.RunnerCommandResult.decode(await res.text());
  }

  async startCommand(
    input: RunnerStartCommandInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandHandle> {
    this.life.ensureOpen();
    const request = parseCommandInput(input);
    if (request.cwd !== null) this.confine(request.cwd, "cwd");
    if (options?.signal?.aborted) throw new CancelledError({ operation: "start command" });
    const { stdin, pty } = input;
    if (pty !== undefined) checkPty(pty);
    const body = {
      ...(JSON.parse(codecs.RunnerCommandRequest.encode(request)) as object),
      ...(stdin ? { stdin: true } : {}),
      ...(pty ? { pty: { cols: pty.cols, rows: pty.rows } } : {}),
    };
    return followCommand(
      this.wire,
      this,
      request.command_id,
      options?.signal,
      (signal) =>
        this.t.request("POST", `${this.path}/commands/stream`, {
          json: JSON.stringify(body),
          signal,
          idempotent: false,
          operation: "start command",
          sessionId: this.info.sessionId,
        }),
      stdin === true || pty !== undefined ? { pty: pty !== undefined } : null,
    );
  }

  /** Follows a command again (from this or another process): the server replays what it retained. */
  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.life.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "attach command" });
    return followCommand(
      this.wire,
      this,
      commandId,
      options?.signal,
      (signal) =>
        this.t.request("GET", `${this.path}/commands/${encodeURIComponent(commandId)}/stream`, {
          signal,
          idempotent: true,
          operation: "attach command",
          sessionId: this.info.sessionId,
        }),
      // Any attached handle may write (the server refuses with `stdin_closed` when the command takes none).
      { pty: true, attached: true },
    );
  }

  async cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean> {
    this.life.ensureOpen();
    const res = await this.t.request("DELETE", `${this.path}/commands/${encodeURIComponent(commandId)}`, {
      signal: options?.signal,
      idempotent: true,
      operation: "cancel command",
      buffer: true,
      sessionId: this.info.sessionId,
    });
    const body = (await res.json()) as { cancelled?: unknown };
    return body.cancelled === true;
  }

  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.life.ensureOpen();
    this.confine(request.path, "read");
    const res = await this.t.request("GET", `${this.path}/files?path=${encodeURIComponent(request.path)}`, {
      signal: options?.signal,
      idempotent: true,
      operation: "read file",
      buffer: true,
      sessionId: this.info.sessionId,
    });
    return { path: request.path, contents: new Uint8Array(await res.arrayBuffer()) };
  }

  async writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    this.life.ensureOpen();
    const request = parseFileWriteInput(input);
    this.confine(request.path, "write");
    await this.t.request("PUT", `${this.path}/files?path=${encodeURIComponent(request.path)}`, {
      body: request.contents,
      signal: options?.signal,
      idempotent: true,
      operation: "write file",
      sessionId: this.info.sessionId,
    });
  }

  /**
   * `GET /files` with a `Range` header: the bytes arrive as the server sends them (bounded memory). A connection
   * cut in the middle ends `body` with a retryable `ProviderApiError`.
   */
  async readFileStream(
    request: RunnerFileStreamRequest,
    options?: RunnerCallOptions,
  ): Promise<RunnerFileStream> {
    this.life.ensureOpen();
    checkRange(request);
    this.confine(request.path, "read");
    return readFileStream(this.wire, request, options);
  }

  /**
   * `PUT /files` with the chunks as a streamed body (bounded memory). Not retried (a stream cannot be resent);
   * the server writes atomically, so a failed call leaves the old file.
   */
  async writeFileStream(
    request: { path: string },
    body: AsyncIterable<Uint8Array>,
    options?: RunnerCallOptions,
  ): Promise<{ bytes: number }> {
    this.life.ensureOpen();
    const { path } = parseFileWriteInput({ path: request.path, contents: new Uint8Array() });
    this.confine(path, "write");
    return writeFileStream(this.wire, path, body, options);
  }

  async exposePort(input: RunnerPortRequestInput, options?: RunnerCallOptions): Promise<RunnerPortResult> {
    this.life.ensureOpen();
    const request = parsePortInput(input);
    const res = await this.t.request("POST", `${this.path}/ports`, {
      json: codecs.RunnerPortRequest.encode(request),
      signal: options?.signal,
      idempotent: true,
      operation: "expose port",
      buffer: true,
      sessionId: this.info.sessionId,
    });
    return codecs.RunnerPortResult.decode(await res.text());
  }

  /**
   * With `onProgress`, the server streams the export's progress (NDJSON frames, then the result); a server that
   * does not stream answers the result alone. Aborting closes the connection, which cancels the export there.
   */
  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.life.ensureOpen();
    const request = parseArtifactExportInput(input);
    const onProgress = options?.onProgress;
    const res = await this.t.request("POST", `${this.path}/artifacts`, {
      json: codecs.RunnerArtifactExportRequest.encode(request),
      signal: options?.signal,
      idempotent: false,
      operation: "export artifact",
      ...(onProgress ? { headers: { accept: "application/x-ndjson" } } : { buffer: true }),
      sessionId: this.info.sessionId,
    });
    if (!onProgress || !/x-ndjson/.test(res.headers.get("content-type") ?? ""))
      return codecs.RunnerArtifactExportResult.decode(await res.text());
    return readExportStream(this.wire, res, onProgress, options?.signal);
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef | null> {
    this.life.ensureOpen();
    const res = await this.t.request("POST", `${this.path}/snapshots`, {
      signal: options?.signal,
      idempotent: false,
      operation: "snapshot",
      buffer: true,
      sessionId: this.info.sessionId,
    });
    const body = (await res.json()) as { snapshot?: unknown };
    return body.snapshot
      ? { ...codecs.RunnerSnapshotRef.parse(body.snapshot), provider_id: this.info.providerId }
      : null;
  }

  async close(options?: RunnerCallOptions): Promise<void> {
    if (!this.life.markClosed()) return;
    try {
      await this.t.request("DELETE", this.path, {
        signal: options?.signal,
        idempotent: true,
        operation: "close session",
        sessionId: this.info.sessionId,
      });
    } catch (error) {
      if (!SessionNotFoundError.isInstance(error)) throw error;
    }
  }
}
