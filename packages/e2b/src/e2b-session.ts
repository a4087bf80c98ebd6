import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import {
  argvToShell,
  CancelledError,
  CommandNotFoundError,
  cancelledMarker,
  OutputQueue,
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
  type RunnerFileWriteInput,
  type RunnerMount,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionNotFoundError,
  sandboxViewPath,
  timeoutMarker,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import {
  exportArtifact,
  parseArtifactTarget,
  type SandboxMountRef,
  sessionArtifactSource,
  unmountInSandbox,
} from "@roder/runner-storage";
import type { Sandbox } from "e2b";
import type { E2bDestinationConfig } from "./e2b-config.js";
import { mapE2bError, mapE2bFileError } from "./e2b-errors.js";
import { isTerminalSize, PtyLaunch } from "./e2b-pty.js";
import { shellEnv } from "./e2b-shell-env.js";

type SdkSandbox = Sandbox;
type SdkHandle = Awaited<ReturnType<SdkSandbox["commands"]["run"]>> & {
  pid: number;
  kill(): Promise<boolean>;
  disconnect(): Promise<void>;
  wait(): Promise<{ exitCode: number; stdout: string; stderr: string }>;
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Env variable that names a command's id inside the sandbox, so `attachCommand` can find its process. */
export const COMMAND_ID_ENV = "RODER_COMMAND_ID";
/** Env variable that says how a command takes input (`stdin` or `pty`), so an attached handle can write to it. */
export const COMMAND_INPUT_ENV = "RODER_COMMAND_INPUT";

/** How a followed command takes input: none, its stdin (envd's pipe), or its terminal (envd's PTY). */
type InputKind = "none" | "stdin" | "pty";

interface FollowCallbacks {
  onStdout: (d: string) => void;
  onStderr: (d: string) => void;
  onPty: (d: Uint8Array) => void;
}

export class E2bSession implements RemoteRunnerSession {
  private closed = false;
  private paused = false;
  private readonly running = new Map<string, { handle: SdkHandle; cancelled: boolean }>();
  /** When the sandbox's timeout was last set to now + ttl (create and connect set it too). */
  private extendedAt = Date.now();
  private extending: Promise<void> | undefined;
  /** Moves the timeout while a command this client follows runs (a command is use, however quiet). */
  private keepAlive: ReturnType<typeof setInterval> | undefined;

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
  ) {}

  private get root(): string {
    return this.info.config.workspace_root;
  }

  private map(error: unknown, operation: string): unknown {
    return mapE2bError(error, {
      operation,
      sandboxId: this.sandbox.sandboxId,
      apiKeyEnv: this.info.apiKeyEnv,
    });
  }

  private ensureOpen(options?: RunnerCallOptions, operation = "call"): void {
    if (options?.signal?.aborted) throw new CancelledError({ operation });
    if (this.paused)
      throw new RunnerError(
        "session_paused",
        `sandbox ${this.sandbox.sandboxId} is paused: resume it with provider.resumeSession(session.state())`,
      );
    if (this.closed)
      throw new SessionNotFoundError({
        providerId: "e2b",
        sessionId: this.sandbox.sandboxId,
        message: `session (sandbox ${this.sandbox.sandboxId}) is closed`,
      });
  }

  /**
   * Liveness: E2B kills the sandbox when its timeout passes, whatever it runs. Each operation moves the timeout
   * to now + ttl (at most once per keepAliveIntervalMs); when half the ttl has passed since the last move, the
   * operation waits for it, so a sandbox close to its end is extended before it is used (or found gone: a
   * typed SessionNotFoundError).
   */
  private async touch(): Promise<void> {
    const since = Date.now() - this.extendedAt;
    if (since < this.info.keepAliveIntervalMs) return;
    const moved = this.extend();
    // Only a sandbox found gone fails the operation: another failure to extend leaves it to the next one.
    const settled = moved.catch((error: unknown) => {
      if (SessionNotFoundError.isInstance(error)) throw error;
    });
    if (since >= this.info.ttlMs / 2) await settled;
    else settled.catch(() => {});
  }

  private extend(): Promise<void> {
    this.extending ??= (async () => {
      const at = Date.now();
      try {
        await this.info.extend(this.info.ttlMs);
        this.extendedAt = Math.max(this.extendedAt, at);
      } catch (error) {
        throw this.map(error, "extend the sandbox timeout");
      } finally {
        this.extending = undefined;
      }
    })();
    return this.extending;
  }

  /** Starts or stops the keep-alive timer as commands start and end. */
  private updateKeepAlive(): void {
    const want = this.running.size > 0 && !this.closed && !this.paused;
    if (want && !this.keepAlive) {
      this.keepAlive = setInterval(() => {
        if (Date.now() - this.extendedAt >= this.info.keepAliveIntervalMs) this.extend().catch(() => {});
      }, this.info.keepAliveIntervalMs);
      this.keepAlive.unref();
    } else if (!want && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  state(): RunnerSessionState {
    return {
      provider_id: "e2b",
      session_id: this.sandbox.sandboxId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: {
        sandbox_id: this.sandbox.sandboxId,
        workspace_root: this.root,
        config: this.info.config,
        mounts: this.info.mounts,
        mounted: this.info.mounted,
      },
    };
  }

  /**
   * Starts a command and follows it. `stdin: true` keeps its stdin open (envd's pipe: `commands.sendStdin`,
   * `commands.closeStdin`); `pty: { cols, rows }` runs it on a terminal of that size (`pty.create`, `sendInput`,
   * `resize`): E2B's PTY always starts an interactive login shell, into which a launch line is typed behind a
   * start marker (see `PtyLaunch`), so the handle's output is the program's alone.
   */
  async startCommand(
    input: RunnerStartCommandInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "runCommand" });
    const { stdin: keepStdin, pty, ...wire } = (input ?? {}) as RunnerStartCommandInput;
    const request = parseCommandInput(wire);
    if (pty !== undefined && !isTerminalSize(pty))
      throw new RunnerError(
        "invalid_request",
        `pty must be { cols, rows } with whole numbers 1..65535, got ${JSON.stringify(pty)}`,
      );
    await this.touch();
    // The sandbox is its own machine: a cwd is any directory of its view (relative: the workspace's).
    const cwd = sandboxViewPath(request.cwd ?? this.root, this.root);
    const asked: Record<string, string> = {};
    for (const [k, v] of request.env) {
      if (!ENV_NAME.test(k))
        throw new RunnerError("invalid_request", `invalid environment variable name '${k}'`);
      asked[k] = v; // a repeated name keeps its last value
    }
    if (this.running.has(request.command_id))
      throw new RunnerError("invalid_request", `command id '${request.command_id}' is already running`);
    // E2B starts every command through a login shell whose profile may set PATH and others again: the values
    // travel under carrier names and are moved to theirs in front of the program (see shellEnv).
    const { carriers, head: assignments } = shellEnv(asked);
    const argv = [request.program, ...request.args];
    // envd lists a process with its env: this is how another client finds the command again (attachCommand).
    const envs: Record<string, string> = { ...carriers, [COMMAND_ID_ENV]: request.command_id };
    const kind: InputKind = pty ? "pty" : keepStdin === true ? "stdin" : "none";
    if (kind !== "none") envs[COMMAND_INPUT_ENV] = kind;
    const timeoutMs = request.timeout_ms ?? 0;
    if (pty) {
      const launch = new PtyLaunch(argv, assignments);
      return this.follow(
        request.command_id,
        request.timeout_ms,
        options?.signal,
        { kind, launch, cwd },
        async (callbacks) => {
          const handle = (await this.sandbox.pty.create({
            cols: pty.cols,
            rows: pty.rows,
            cwd,
            envs: { ...envs, ...launch.env },
            timeoutMs,
            onData: callbacks.onPty,
          })) as unknown as SdkHandle;
          try {
            await this.sandbox.pty.sendInput(handle.pid, launch.line);
          } catch (error) {
            await handle.kill().catch(() => false);
            throw error;
          }
          return handle;
        },
      );
    }
    // The SDK takes a shell line (bash -l -c): argv is quoted so the program receives exactly these bytes.
    const line = assignments + argvToShell(argv);
    return this.follow(
      request.command_id,
      request.timeout_ms,
      options?.signal,
      { kind, cwd },
      (callbacks) =>
        this.sandbox.commands.run(line, {
          background: true,
          cwd,
          envs,
          timeoutMs,
          stdin: kind === "stdin",
          onStdout: callbacks.onStdout,
          onStderr: callbacks.onStderr,
        }) as unknown as Promise<SdkHandle>,
    );
  }

  /** This session's command `commandId` (its RODER_COMMAND_ID env), if envd still runs it: pid and input. */
  private async findProcess(
    commandId: string,
    signal?: AbortSignal,
  ): Promise<{ pid: number; kind: InputKind } | undefined> {
    try {
      const list = await this.sandbox.commands.list(signal ? ({ signal } as object) : undefined);
      const p = list.find((x) => x.envs?.[COMMAND_ID_ENV] === commandId);
      if (!p) return undefined;
      const input = p.envs?.[COMMAND_INPUT_ENV];
      return { pid: p.pid, kind: input === "pty" || input === "stdin" ? input : "none" };
    } catch (error) {
      throw this.map(error, "list commands");
    }
  }

  /**
   * Follows a command started by `startCommand` again, from this or any other client: envd keeps a process
   * whose client went away; it is found by its RODER_COMMAND_ID env. Output starts at the moment of
   * attaching (envd does not replay); an ended command is gone (CommandNotFoundError). A command started with
   * stdin or a terminal can be written to (and resized) through the new handle too.
   */
  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "attachCommand" });
    await this.touch();
    const found = await this.findProcess(commandId, options?.signal);
    if (found === undefined)
      throw new CommandNotFoundError({
        providerId: "e2b",
        commandId,
        message: `no running command '${commandId}' in sandbox ${this.sandbox.sandboxId} (ended commands are not kept)`,
      });
    const { pid, kind } = found;
    return this.follow(commandId, undefined, options?.signal, { kind }, (callbacks) =>
      kind === "pty"
        ? (this.sandbox.pty.connect(pid, {
            timeoutMs: 0,
            onData: callbacks.onPty,
          }) as unknown as Promise<SdkHandle>)
        : (this.sandbox.commands.connect(pid, {
            timeoutMs: 0,
            onStdout: callbacks.onStdout,
            onStderr: callbacks.onStderr,
          }) as unknown as Promise<SdkHandle>),
    );
  }

  private async follow(
    commandId: string,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
    input: { kind: InputKind; launch?: PtyLaunch; cwd?: string },
    open: (callbacks: FollowCallbacks) => Promise<SdkHandle>,
  ): Promise<RunnerCommandHandle> {
    const output = new OutputQueue();
    let stdout = "";
    let stderr = "";
    const enc = new TextEncoder();
    // A terminal's bytes: decoded as a stream (a character may be split across chunks), all of it stdout.
    const ptyText = new TextDecoder();
    const ptyBytes = (data: Uint8Array) => {
      if (data.length === 0) return;
      stdout += ptyText.decode(data, { stream: true });
      output.push({ stream: "stdout", data });
    };
    let handle: SdkHandle;
    try {
      handle = await open({
        onStdout: (d: string) => {
          stdout += d;
          output.push({ stream: "stdout", data: enc.encode(d) });
        },
        onStderr: (d: string) => {
          stderr += d;
          output.push({ stream: "stderr", data: enc.encode(d) });
        },
        onPty: (d: Uint8Array) => ptyBytes(input.launch ? input.launch.push(d) : d),
      });
    } catch (error) {
      const why = String((error as Error)?.message ?? "");
      // envd checks the working directory before it spawns (invalid_argument).
      if (input.cwd !== undefined && /cwd '.*' does not exist/.test(why))
        throw new RunnerError(
          "not_found",
          `run command: the working directory '${input.cwd}' does not exist in the sandbox`,
          { cause: error },
        );
      if (input.cwd !== undefined && /chdir .*not a directory/i.test(why))
        throw new RunnerError(
          "invalid_request",
          `run command: the working directory '${input.cwd}' is not a directory`,
          { cause: error },
        );
      throw this.map(error, "run command");
    }
    const pty = input.kind === "pty";
    const entry = { handle, cancelled: false, detached: false, ended: false, stdinClosed: false };
    this.running.set(commandId, entry);
    this.updateKeepAlive();
    const onAbort = () => {
      entry.cancelled = true;
      void handle.kill().catch(() => false);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    // An abort while the command was starting (before its pid was known) kills it now.
    if (signal?.aborted) onAbort();
    /** The terminal's last bytes (the launch prelude's tail if the program never started) and decoder state. */
    const flushPty = () => {
      if (!pty) return;
      if (input.launch) ptyBytes(input.launch.end());
      stdout += ptyText.decode();
    };
    const result: Promise<RunnerCommandResult> = (async () => {
      try {
        const r = await handle.wait();
        flushPty();
        return {
          command_id: commandId,
          exit_code: r.exitCode,
          stdout: pty ? stdout : r.stdout,
          stderr: pty ? "" : r.stderr,
        };
      } catch (error) {
        flushPty();
        const e = error as Error & { exitCode?: number; stdout?: string; stderr?: string };
        if (entry.cancelled)
          return { command_id: commandId, exit_code: null, stdout, stderr: stderr + cancelledMarker() };
        if (e?.name === "CommandExitError" && typeof e.exitCode === "number") {
          // A non-zero exit is a result; a killed process reports -1.
          return {
            command_id: commandId,
            exit_code: e.exitCode < 0 ? null : e.exitCode,
            stdout: pty ? stdout : (e.stdout ?? stdout),
            stderr: pty ? "" : (e.stderr ?? stderr),
          };
        }
        if (e?.name === "TimeoutError" && timeoutMs) {
          await handle.kill().catch(() => false);
          return {
            command_id: commandId,
            exit_code: null,
            stdout,
            stderr: stderr + timeoutMarker(timeoutMs),
          };
        }
        throw this.map(error, "run command");
      } finally {
        entry.ended = true;
        output.end();
        signal?.removeEventListener("abort", onAbort);
        if (this.running.get(commandId) === entry) this.running.delete(commandId);
        this.updateKeepAlive();
      }
    })();
    result.catch(() => {});
    let reattached: Promise<RunnerCommandResult> | undefined;
    const handleOut: RunnerCommandHandle = {
      commandId,
      output,
      wait: () => {
        if (!entry.detached) return result;
        // Detached: the SDK handle no longer hears the end; follow the command again for its result.
        reattached ??= (async () => (await this.attachCommand(commandId)).wait())();
        return reattached;
      },
      kill: async () => this.cancelCommand(commandId),
      detach: async () => {
        entry.detached = true;
        if (this.running.get(commandId) === entry) this.running.delete(commandId);
        this.updateKeepAlive();
        output.end();
        await handle.disconnect().catch(() => {});
      },
    };
    if (input.kind === "none") return handleOut;
    const pid = handle.pid;
    const stdinClosed = (cause?: unknown) =>
      new RunnerError(
        "stdin_closed",
        `the stdin of command '${commandId}' is closed (its process ended, or closeStdin was called)`,
        cause === undefined ? undefined : { cause },
      );
    /** envd refuses input to an ended process (not found) or a closed stdin: that is `stdin_closed`. */
    const inputError = (error: unknown, operation: string) => {
      const e = error as { name?: string; message?: string };
      if (
        entry.ended ||
        e?.name === "NotFoundError" ||
        /stdin not enabled or closed|not found|process.*(ended|exited)/i.test(String(e?.message ?? ""))
      )
        return stdinClosed(error);
      return this.map(error, operation);
    };
    const send = async (bytes: Uint8Array) => {
      if (pty) {
        // The shell reads the launch line first: input waits until the program has the terminal.
        await input.launch?.ready;
        if (entry.ended) throw stdinClosed();
        await this.sandbox.pty.sendInput(pid, bytes);
      } else await this.sandbox.commands.sendStdin(pid, bytes);
    };
    handleOut.write = async (data: string | Uint8Array) => {
      if (entry.ended || entry.stdinClosed) throw stdinClosed();
      const bytes = typeof data === "string" ? enc.encode(data) : data;
      try {
        await send(bytes);
      } catch (error) {
        throw inputError(error, "write to stdin");
      }
    };
    handleOut.closeStdin = async () => {
      if (entry.ended || entry.stdinClosed) return;
      try {
        // A terminal has no stdin to close: end-of-file is Ctrl+D (what envd says to send).
        if (pty) await send(new Uint8Array([4]));
        else {
          entry.stdinClosed = true;
          await this.sandbox.commands.closeStdin(pid);
        }
      } catch (error) {
        const mapped = inputError(error, "close stdin");
        if (!RunnerError.isInstance(mapped) || mapped.code !== "stdin_closed") throw mapped;
      }
    };
    if (pty)
      handleOut.resize = async (cols: number, rows: number) => {
        if (!isTerminalSize({ cols, rows }))
          throw new RunnerError(
            "invalid_request",
            `terminal size must be whole numbers 1..65535, got ${cols}x${rows}`,
          );
        if (entry.ended) return;
        try {
          await this.sandbox.pty.resize(pid, { cols, rows });
        } catch (error) {
          if (entry.ended) return;
          throw this.map(error, "resize terminal");
        }
      };
    return handleOut;
  }

  async runCommand(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    return (await this.startCommand(request, options)).wait();
  }

  async cancelCommand(commandId: string): Promise<boolean> {
    this.ensureOpen();
    await this.touch();
    const entry = this.running.get(commandId);
    if (!entry) {
      // Started by another client (or detached): find its process through envd.
      const found = await this.findProcess(commandId);
      if (found === undefined) return false;
      return this.sandbox.commands.kill(found.pid).catch((error: unknown) => {
        throw this.map(error, "cancel command");
      });
    }
    entry.cancelled = true;
    const killed = await entry.handle.kill().catch(() => false);
    if (!killed) entry.cancelled = false;
    return killed;
  }

  private fileError(error: unknown, operation: string, path: string): unknown {
    return mapE2bFileError(error, {
      operation,
      path,
      sandboxId: this.sandbox.sandboxId,
      apiKeyEnv: this.info.apiKeyEnv,
    });
  }

  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen(options, "readFile");
    const p = sandboxViewPath(request.path, this.root);
    await this.touch();
    try {
      const bytes = await this.sandbox.files.read(p, {
        format: "bytes",
        ...(options?.signal ? { signal: options.signal } : {}),
      });
      return { path: request.path, contents: bytes };
    } catch (error) {
      throw this.fileError(error, "read file", request.path);
    }
  }

  /**
   * Writes anywhere in the sandbox's view, atomically: the bytes land in a temp file of the target's directory
   * (a random name), then a rename replaces the target — a reader never sees half a file, and a symbolic link
   * at the target is replaced rather than written through.
   */
  async writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen(options, "writeFile");
    const request = parseFileWriteInput(input);
    const p = sandboxViewPath(request.path, this.root);
    if (p === this.root || p === "/")
      throw new RunnerError(
        "is_a_directory",
        `write file: cannot write over ${p === "/" ? "the sandbox's root" : "the workspace root"}: ${request.path}`,
      );
    await this.touch();
    const tmp = `${posix.dirname(p)}/.roder-tmp-${randomBytes(6).toString("hex")}`;
    try {
      const c = request.contents;
      await this.sandbox.files.write(
        tmp,
        c.buffer.slice(c.byteOffset, c.byteOffset + c.byteLength) as ArrayBuffer,
        { useOctetStream: true, ...(options?.signal ? { signal: options.signal } : {}) },
      );
      await this.sandbox.files.rename(tmp, p);
    } catch (error) {
      await this.sandbox.files.remove(tmp).catch(() => {});
      throw this.fileError(error, "write file", request.path);
    }
  }

  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.ensureOpen();
    const request = parsePortInput(input);
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535)
      throw new RunnerError("invalid_request", `port must be 1..65535, got ${request.port}`);
    return { port: request.port, url: `https://${this.sandbox.getHost(request.port)}` };
  }

  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.ensureOpen(options, "exportArtifact");
    const request = parseArtifactExportInput(input);
    await this.touch();
    if (this.info.config.artifacts === undefined)
      throw new UnsupportedCapabilityError({
        providerId: "e2b",
        capability: "artifact_export",
        message: "e2b: this destination has no artifacts bucket (config.artifacts)",
      });
    const target = parseArtifactTarget("e2b", this.info.config.artifacts);
    const path = sandboxViewPath(request.path, this.root);
    return exportArtifact({
      providerId: "e2b",
      target,
      env: this.info.env,
      source: sessionArtifactSource(this, {
        // Archives of directories are made in the sandbox's /tmp, not in the workspace.
        tmpDir: "/tmp",
        // envd streams a file's bytes: the stream path never holds the whole artifact.
        openStream: async (file) => {
          const { Readable } = await import("node:stream");
          const web = await this.sandbox.files.read(file, { format: "stream" });
          return Readable.fromWeb(web as import("node:stream/web").ReadableStream);
        },
      }),
      request,
      path,
      ...(options?.signal ? { signal: options.signal } : {}),
      ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
    });
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef> {
    this.ensureOpen(options, "snapshot");
    await this.touch();
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
    this.paused = true;
    this.updateKeepAlive();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.paused) {
      // Nothing runs in a paused sandbox to drain or unmount: it goes as it is.
      this.closed = true;
      this.updateKeepAlive();
      await this.info.kill();
      return;
    }
    // Uploads still in rclone's write-back reach the bucket before the sandbox goes.
    for (const ref of this.info.mounted.splice(0).reverse())
      await unmountInSandbox(this, ref).catch(() => {});
    this.closed = true;
    this.updateKeepAlive();
    for (const e of this.running.values()) await e.handle.kill().catch(() => false);
    await this.info.kill();
  }
}
