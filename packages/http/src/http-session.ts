import {
  CancelledError,
  checkRange,
  codecs,
  confinePath,
  OutputQueue,
  ProviderApiError,
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
  SessionNotFoundError,
  sleep,
} from "@roder/runner-contract";
import { errorFromResponse } from "./http-errors.js";
import { decodeFrame } from "./http-frames.js";
import type { HttpAnswer, HttpTransport } from "./http-transport.js";

function isTerminalSize(p: unknown): p is { cols: number; rows: number } {
  const { cols, rows } = (p ?? {}) as { cols?: unknown; rows?: unknown };
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  return ok(cols) && ok(rows);
}

export class HttpRunnerSession implements RemoteRunnerSession {
  private closed = false;

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
  ) {}

  private get path(): string {
    return `/sessions/${encodeURIComponent(this.info.sessionId)}`;
  }

  private ensureOpen(): void {
    if (this.closed)
      throw new SessionNotFoundError({
        providerId: this.info.providerId,
        sessionId: this.info.sessionId,
        message: `session '${this.info.sessionId}' is closed`,
      });
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
    this.ensureOpen();
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
    this.ensureOpen();
    const request = parseCommandInput(input);
    if (request.cwd !== null) this.confine(request.cwd, "cwd");
    if (options?.signal?.aborted) throw new CancelledError({ operation: "start command" });
    const { stdin, pty } = input;
    if (pty !== undefined && !isTerminalSize(pty))
      throw new RunnerError("invalid_request", "pty must be { cols, rows }, whole numbers 1..65535");
    const body = {
      ...(JSON.parse(codecs.RunnerCommandRequest.encode(request)) as object),
      ...(stdin ? { stdin: true } : {}),
      ...(pty ? { pty: { cols: pty.cols, rows: pty.rows } } : {}),
    };
    return this.follow(
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

  /**
   * Stdin of a command as the server takes it: each write says the byte offset it starts at (the bytes this
   * handle has had taken so far), so a write resent after a lost answer is applied once; writes are sent one
   * at a time, in order.
   */
  private stdinWriter(commandId: string, start: Promise<number>) {
    let chain: Promise<unknown> = Promise.resolve();
    let offset: number | null = null;
    const base = `${this.path}/commands/${encodeURIComponent(commandId)}`;
    const serial = <T>(fn: () => Promise<T>): Promise<T> => {
      const run = chain.then(fn);
      chain = run.catch(() => {});
      return run;
    };
    return {
      write: (data: string | Uint8Array) =>
        serial(async () => {
          offset ??= await start;
          const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
          const res = await this.t.request("POST", `${base}/stdin?offset=${offset}`, {
            body: bytes,
            idempotent: true,
            operation: "write to stdin",
            buffer: true,
            sessionId: this.info.sessionId,
          });
          offset = ((await res.json()) as { offset: number }).offset;
        }),
      closeStdin: () =>
        serial(async () => {
          await this.t.request("POST", `${base}/stdin/close`, {
            idempotent: true,
            operation: "close stdin",
            buffer: true,
            sessionId: this.info.sessionId,
          });
        }),
      resize: (cols: number, rows: number) =>
        serial(async () => {
          if (!isTerminalSize({ cols, rows }))
            throw new RunnerError(
              "invalid_request",
              `terminal size must be whole numbers 1..65535, got ${cols}x${rows}`,
            );
          await this.t.request("POST", `${base}/resize`, {
            json: JSON.stringify({ cols, rows }),
            idempotent: true,
            operation: "resize terminal",
            buffer: true,
            sessionId: this.info.sessionId,
          });
        }),
    };
  }

  /** Follows a command again (from this or another process): the server replays what it retained. */
  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "attach command" });
    return this.follow(
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

  /**
   * One NDJSON command stream as a handle. Aborting `signal` cancels the command on the server; `detach()`
   * only drops this connection (the command keeps running, `wait()` attaches again for the result).
   */
  private async follow(
    commandId: string,
    signal: AbortSignal | undefined,
    open: (signal: AbortSignal) => Promise<HttpAnswer>,
    interactive: { pty: boolean; attached?: boolean } | null = null,
  ): Promise<RunnerCommandHandle> {
    // Where this handle's stdin writes start: 0 for a command it started, the server's word for an attach.
    let knowOffset!: (n: number) => void;
    const stdinStart = new Promise<number>((resolve) => {
      knowOffset = resolve;
    });
    if (interactive && !interactive.attached) knowOffset(0);
    const detacher = new AbortController();
    const onAbort = () => {
      // The server keeps a disconnected command running: cancel it explicitly, then drop the stream.
      void this.cancelCommand(commandId).catch(() => false);
      detacher.abort();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    let res: HttpAnswer;
    try {
      res = await open(signal ? AbortSignal.any([signal, detacher.signal]) : detacher.signal);
    } catch (error) {
      signal?.removeEventListener("abort", onAbort);
      throw error;
    }
    const body = res.body;
    if (!body) throw new RunnerError("provider_api", "the streaming response has no body");
    const output = new OutputQueue();
    let detached = false;
    let settled = false;
    let resolveResult!: (r: RunnerCommandResult) => void;
    let rejectResult!: (e: unknown) => void;
    const streamed = new Promise<RunnerCommandResult>((res2, rej) => {
      resolveResult = (r) => {
        settled = true;
        res2(r);
      };
      rejectResult = (e) => {
        settled = true;
        rej(e);
      };
    });
    streamed.catch(() => {});
    // Bytes of each stream handed out so far: a stream cut before its result is resumed through the attach
    // route, skipping what was already delivered (the server says where its replay starts).
    const delivered = { stdout: 0, stderr: 0 };
    const combined = signal ? AbortSignal.any([signal, detacher.signal]) : detacher.signal;
    const cutError = (error: unknown, why: string) =>
      RunnerError.isInstance(error) && error.code !== "provider_api"
        ? error
        : // Typed, and not retryable: the command may be running still.
          new ProviderApiError(
            { providerId: this.info.providerId, message: `command ${commandId}: ${why}`, isRetryable: false },
            { cause: error },
          );
    (async () => {
      let stream = body;
      let skip: { stdout: number; stderr: number } | null = { stdout: 0, stderr: 0 };
      let resumable = false;
      for (let resumes = 0; ; resumes++) {
        const decoder = new TextDecoder();
        let buffer = "";
        let gotResult = false;
        try {
          for await (const part of stream as unknown as AsyncIterable<Uint8Array>) {
            buffer += decoder.decode(part, { stream: true });
            let nl = buffer.indexOf("\n");
            while (nl >= 0) {
              const line = buffer.slice(0, nl);
              buffer = buffer.slice(nl + 1);
              nl = buffer.indexOf("\n");
              if (!line.trim()) continue;
              const msg = decodeFrame(line);
              if (!msg)
                throw new RunnerError(
                  "provider_api",
                  "the command stream sent a frame this client cannot read",
                );
              if (msg.type === "started") resumable = msg.attachable === true;
              else if (msg.type === "attached") {
                resumable = true;
                if (resumes === 0) knowOffset(msg.stdin_offset ?? 0);
                // Where this replay starts, per stream; a gap (output dropped before what we saw) cannot resume.
                const o = msg.offset;
                if (resumes === 0 && o) {
                  // A first attach: what the replay starts after counts as seen.
                  delivered.stdout = o.stdout;
                  delivered.stderr = o.stderr;
                }
                skip =
                  o && o.stdout <= delivered.stdout && o.stderr <= delivered.stderr
                    ? { stdout: delivered.stdout - o.stdout, stderr: delivered.stderr - o.stderr }
                    : null;
                if (resumes > 0 && skip === null)
                  throw new RunnerError(
                    "provider_api",
                    "the server no longer holds the output that was missed",
                  );
              } else if (msg.type === "stdout" || msg.type === "stderr") {
                let data = new Uint8Array(Buffer.from(msg.data, "base64"));
                const left = skip?.[msg.type] ?? 0;
                if (left > 0) {
                  skip![msg.type] = Math.max(0, left - data.length);
                  if (data.length <= left) continue;
                  data = data.subarray(left);
                }
                delivered[msg.type] += data.length;
                output.push({ stream: msg.type, data });
              } else if (msg.type === "result") {
                gotResult = true;
                resolveResult(codecs.RunnerCommandResult.parse(msg.result));
              } else if (msg.type === "error") {
                gotResult = true;
                rejectResult(new RunnerError(msg.error.code, msg.error.message));
              }
            }
          }
          if (!gotResult) throw new RunnerError("provider_api", "the command stream ended without a result");
          break;
        } catch (error) {
          if (signal?.aborted) rejectResult(new CancelledError({ operation: "command stream" }));
          else if (detached) rejectResult(new RunnerError("detached", "this handle was detached"));
          else if (RunnerError.isInstance(error) && error.code !== "provider_api") rejectResult(error);
          else if (!resumable || resumes >= 3)
            rejectResult(cutError(error, "the output stream was cut before its result"));
          else {
            // The command runs on at the server: follow it again and continue where the cut left off.
            try {
              await sleep(100 * 2 ** resumes, combined);
              const again = await this.t.request(
                "GET",
                `${this.path}/commands/${encodeURIComponent(commandId)}/stream`,
                {
                  signal: combined,
                  idempotent: true,
                  operation: "resume command stream",
                  sessionId: this.info.sessionId,
                },
              );
              if (!again.body) throw new RunnerError("provider_api", "the streaming response has no body");
              stream = again.body;
              skip = null;
              continue;
            } catch (resumeError) {
              if (signal?.aborted) rejectResult(new CancelledError({ operation: "command stream" }));
              else if (detached) rejectResult(new RunnerError("detached", "this handle was detached"));
              else rejectResult(cutError(resumeError, "the output stream was cut and could not be resumed"));
            }
          }
          break;
        }
      }
      signal?.removeEventListener("abort", onAbort);
      knowOffset(0);
      output.end();
    })();
    const stdin = interactive ? this.stdinWriter(commandId, stdinStart) : null;
    let reattached: Promise<RunnerCommandResult> | undefined;
    return {
      commandId,
      output,
      wait: () => {
        if (!detached) return streamed;
        // Detached before the result arrived: follow the command again, only for its result.
        reattached ??= streamed.catch(async (error) => {
          if (!RunnerError.isInstance(error) || error.code !== "detached") throw error;
          const again = await this.attachCommand(commandId);
          return again.wait();
        });
        return reattached;
      },
      kill: async () => this.cancelCommand(commandId),
      detach: async () => {
        if (settled) return;
        detached = true;
        detacher.abort();
      },
      ...(stdin ? { write: stdin.write, closeStdin: stdin.closeStdin } : {}),
      ...(stdin && interactive?.pty ? { resize: stdin.resize } : {}),
    };
  }

  async cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean> {
    this.ensureOpen();
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
    this.ensureOpen();
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
    this.ensureOpen();
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
    this.ensureOpen();
    checkRange(request);
    this.confine(request.path, "read");
    const offset = request.offset ?? 0;
    const { length } = request;
    // `bytes=a-` / `bytes=a-b`; an empty range still asks for one byte, to learn the size.
    const range =
      offset === 0 && length === undefined
        ? null
        : `bytes=${offset}-${length === undefined ? "" : offset + Math.max(length, 1) - 1}`;
    const url = `${this.path}/files?path=${encodeURIComponent(request.path)}`;
    const res = await this.t.request("GET", url, {
      signal: options?.signal,
      idempotent: true,
      operation: "read file",
      sessionId: this.info.sessionId,
      okStatuses: [416],
      ...(range ? { headers: { range } } : {}),
    });
    const contentRange = res.headers.get("content-range");
    let size: number;
    if (res.status === 206 || res.status === 416) {
      const m = /\/(\d+)\s*$/.exec(contentRange ?? "");
      if (!m)
        throw new ProviderApiError({
          providerId: this.info.providerId,
          message: `read file: the server answered ${res.status} without a usable Content-Range`,
          isRetryable: false,
        });
      size = Number(m[1]);
    } else {
      size = Number(res.headers.get("content-length") ?? Number.NaN);
    }
    const span = Math.max(0, Math.min(size - offset, length ?? Number.POSITIVE_INFINITY));
    // A server that ignores ranges answers 200 with the whole file: the range is cut out here.
    const skip = res.status === 200 ? offset : 0;
    const providerId = this.info.providerId;
    const signal = options?.signal;
    const source = res.status === 416 ? null : res.body;
    const body = (async function* () {
      if (!source) return;
      const reader = source.getReader();
      let skipped = 0;
      let sent = 0;
      try {
        while (sent < span) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          try {
            r = await reader.read();
          } catch (error) {
            if (signal?.aborted) throw new CancelledError({ operation: "readFileStream" }, { cause: error });
            throw new ProviderApiError(
              {
                providerId,
                message: `read file: the connection was cut after ${sent} of ${span} bytes`,
                isRetryable: true,
              },
              { cause: error },
            );
          }
          if (r.done) break;
          let chunk = r.value;
          if (skipped < skip) {
            const drop = Math.min(skip - skipped, chunk.byteLength);
            skipped += drop;
            chunk = chunk.subarray(drop);
          }
          if (chunk.byteLength === 0) continue;
          const part = chunk.subarray(0, span - sent);
          sent += part.byteLength;
          yield part;
        }
        if (sent < span)
          throw new ProviderApiError({
            providerId,
            message: `read file: the answer ended after ${sent} of ${span} bytes`,
            isRetryable: true,
          });
      } finally {
        await reader.cancel().catch(() => {});
      }
    })();
    return { path: request.path, size, offset, length: span, body };
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
    this.ensureOpen();
    const { path } = parseFileWriteInput({ path: request.path, contents: new Uint8Array() });
    this.confine(path, "write");
    let bytes = 0;
    let sourceError: { error: unknown } | null = null;
    const counted = (async function* () {
      try {
        for await (const chunk of body) {
          bytes += chunk.byteLength;
          yield chunk;
        }
      } catch (error) {
        sourceError = { error };
        throw error;
      }
    })();
    try {
      await this.t.request("PUT", `${this.path}/files?path=${encodeURIComponent(path)}`, {
        body: counted,
        signal: options?.signal,
        idempotent: false,
        operation: "write file",
        sessionId: this.info.sessionId,
      });
    } catch (error) {
      // The source's own failure, not the connection's words for it.
      if (sourceError) throw (sourceError as { error: unknown }).error;
      throw error;
    }
    return { bytes };
  }

  async exposePort(input: RunnerPortRequestInput, options?: RunnerCallOptions): Promise<RunnerPortResult> {
    this.ensureOpen();
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
    this.ensureOpen();
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
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(part, { stream: true });
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!line.trim()) continue;
          const msg = decodeFrame(line);
          if (msg?.type === "progress") {
            try {
              onProgress({
                phase: msg.phase,
                bytes: msg.bytes,
                ...(msg.total !== undefined ? { total: msg.total } : {}),
              });
            } catch {
              // A progress listener never breaks an export.
            }
          } else if (msg?.type === "result") return codecs.RunnerArtifactExportResult.parse(msg.result);
          else if (msg?.type === "error")
            throw errorFromResponse({
              providerId: this.info.providerId,
              status: msg.status ?? 500,
              body: { error: msg.error },
              url: `${this.path}/artifacts`,
              operation: "export artifact",
              tokenEnv: "the token",
              sessionId: this.info.sessionId,
            });
          else
            throw new RunnerError("provider_api", "the export stream sent a frame this client cannot read");
        }
      }
    } catch (error) {
      if (options?.signal?.aborted) throw new CancelledError({ operation: "export artifact" });
      if (RunnerError.isInstance(error)) throw error;
      throw new ProviderApiError(
        {
          providerId: this.info.providerId,
          message: "export artifact: the connection was cut before the result (the export may have finished)",
          isRetryable: false,
        },
        { cause: error },
      );
    }
    throw new ProviderApiError({
      providerId: this.info.providerId,
      message: "export artifact: the stream ended without a result (the export may have finished)",
      isRetryable: false,
    });
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef | null> {
    this.ensureOpen();
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
    if (this.closed) return;
    this.closed = true;
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
