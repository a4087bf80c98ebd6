import {
  CancelledError,
  cancelledMarker,
  confinePath,
  PathOutsideWorkspaceError,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequest,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerCommandRequestInput,
  RunnerCommandRequestSchema,
  type RunnerCommandResult,
  RunnerError,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileWriteRequest,
  type RunnerPortRequest,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  SessionNotFoundError,
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
import type { ExecResult, FlyApi } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";
import { EXIT, KILL, READ, RUN, WRITE } from "./fly-scripts.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class FlySession implements RemoteRunnerSession {
  private closed = false;
  private paused = false;
  private readonly running = new Map<string, { cancelled: boolean; cancelling?: Promise<boolean> }>();

  constructor(
    private readonly api: FlyApi,
    readonly info: {
      machineId: string;
      destinationId: string;
      config: FlyDestinationConfig;
      env: Record<string, string | undefined>;
      /** Buckets mounted in the machine at create (rclone + FUSE): unmounted, write-back drained, at close. */
      mounted: SandboxMountRef[];
    },
  ) {}

  private get root(): string {
    return this.info.config.workspace_root;
  }

  private get path(): string {
    return `/apps/${this.info.config.app}/machines/${this.info.machineId}`;
  }

  state(): RunnerSessionState {
    return {
      provider_id: "fly",
      session_id: this.info.machineId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: {
        machine_id: this.info.machineId,
        app: this.info.config.app,
        workspace_root: this.root,
        config: this.info.config,
        mounted: this.info.mounted,
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

  /** One exec call: argv, optional stdin, exec timeout in seconds. */
  exec(
    command: string[],
    o: { stdin?: string; timeoutS: number; signal?: AbortSignal | undefined; operation: string },
  ): Promise<ExecResult> {
    return this.api.call<ExecResult>("POST", `${this.path}/exec`, {
      body: { command, timeout: o.timeoutS, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) },
      idempotent: false,
      operation: o.operation,
      signal: o.signal,
      machineId: this.info.machineId,
    });
  }

  private pidFile(commandId: string): string {
    return `${this.root}/.roder/run/${Buffer.from(commandId).toString("hex").slice(0, 64)}.pid`;
  }

  async runCommand(
    input: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "runCommand" });
    const request = RunnerCommandRequestSchema.parse(input);
    const cwd = confinePath(request.cwd ?? this.root, { root: this.root, access: "cwd" });
    for (const [k, v] of request.env) {
      if (!ENV_NAME.test(k))
        throw new RunnerError("invalid_request", `invalid environment variable name '${k}'`);
      if (v.includes("\u0000"))
        throw new RunnerError("invalid_request", `environment variable '${k}' contains a NUL byte`);
    }
    if ([request.program, ...request.args].some((a) => a.includes("\u0000")))
      throw new RunnerError("invalid_request", "argv entries cannot contain NUL bytes");
    if (this.running.has(request.command_id))
      throw new RunnerError("invalid_request", `command id '${request.command_id}' is already running`);
    const seconds = request.timeout_ms ? (request.timeout_ms / 1000).toFixed(3) : "0";
    const execTimeout = request.timeout_ms
      ? Math.ceil(request.timeout_ms / 1000) + 5
      : this.info.config.default_exec_timeout_s;
    const argv = [
      "/bin/sh",
      "-c",
      RUN,
      "roder-run",
      cwd,
      this.pidFile(request.command_id),
      seconds,
      request.program,
      ...request.args,
    ];
    // Env values travel on stdin (base64 lines), never on a command line.
    const envBlock = request.env.map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}\n`).join("");
    const entry: { cancelled: boolean; cancelling?: Promise<boolean> } = { cancelled: false };
    this.running.set(request.command_id, entry);
    const started = Date.now();
    // Aborting drops the exec request, which does not stop the process on the machine: kill it through a
    // second exec ("arm": also when it has not started yet) before answering.
    let killing: Promise<unknown> | undefined;
    const onAbort = () => {
      entry.cancelled = true;
      killing = this.exec(["/bin/sh", "-c", KILL, "roder-kill", this.pidFile(request.command_id), "arm"], {
        timeoutS: 30,
        operation: "cancel command",
      }).catch(() => undefined);
    };
    options?.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let r: Awaited<ReturnType<typeof this.exec>>;
      try {
        r = await this.exec(argv, {
          ...(envBlock ? { stdin: envBlock } : {}),
          timeoutS: execTimeout,
          signal: options?.signal,
          operation: "run command",
        });
      } catch (error) {
        if (killing) {
          await killing;
          throw new CancelledError({ operation: "runCommand" }, { cause: error });
        }
        throw error;
      }
      if (entry.cancelling) await entry.cancelling.catch(() => false);
      const code = r.exit_signal ? null : (r.exit_code ?? 0);
      let stderr = r.stderr ?? "";
      const timedOut =
        request.timeout_ms !== undefined &&
        (code === 124 || code === 137 || code === null) &&
        Date.now() - started >= request.timeout_ms;
      if (entry.cancelled)
        return {
          command_id: request.command_id,
          exit_code: null,
          stdout: r.stdout ?? "",
          stderr: stderr + cancelledMarker(),
        };
      if (timedOut) {
        stderr += timeoutMarker(request.timeout_ms!);
        return { command_id: request.command_id, exit_code: null, stdout: r.stdout ?? "", stderr };
      }
      // timeout(1) reports a program it could not run as 126/127, like a shell.
      return { command_id: request.command_id, exit_code: code, stdout: r.stdout ?? "", stderr };
    } finally {
      options?.signal?.removeEventListener("abort", onAbort);
      this.running.delete(request.command_id);
    }
  }

  /** Kills the command's process group through a second exec; `true` when it was running. */
  async cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean> {
    this.ensureOpen();
    const entry = this.running.get(commandId);
    const cancelling = (async () => {
      const r = await this.exec(["/bin/sh", "-c", KILL, "roder-kill", this.pidFile(commandId)], {
        timeoutS: 30,
        signal: options?.signal,
        operation: "cancel command",
      });
      const killed = (r.exit_code ?? 0) === 0;
      if (killed && entry) entry.cancelled = true;
      return killed;
    })();
    // The command's own exec may answer before this one: it waits for the verdict (see runCommand).
    if (entry) entry.cancelling = cancelling;
    return cancelling;
  }

  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen();
    const p = confinePath(request.path, { root: this.root, access: "read" });
    const r = await this.exec(["/bin/sh", "-c", READ, "roder-read", p, this.root], {
      timeoutS: 120,
      signal: options?.signal,
      operation: "read file",
    });
    this.fileError(r, request.path);
    return { path: request.path, contents: new Uint8Array(Buffer.from(r.stdout ?? "", "base64")) };
  }

  async writeFile(request: RunnerFileWriteRequest, options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    const p = confinePath(request.path, { root: this.root, access: "write" });
    if (p === this.root)
      throw new PathOutsideWorkspaceError({
        path: request.path,
        root: this.root,
        reason: "cannot write over the workspace root",
      });
    const stdin = Buffer.from(
      request.contents.buffer,
      request.contents.byteOffset,
      request.contents.byteLength,
    ).toString("base64");
    const r = await this.exec(["/bin/sh", "-c", WRITE, "roder-write", p, this.root], {
      stdin,
      timeoutS: 120,
      signal: options?.signal,
      operation: "write file",
    });
    this.fileError(r, request.path);
  }

  private fileError(r: ExecResult, path: string): void {
    const code = r.exit_code ?? 0;
    if (code === 0) return;
    if (code === EXIT.outside)
      throw new PathOutsideWorkspaceError({
        path,
        root: this.root,
        reason: "its real path (symbolic links resolved) is outside the workspace",
      });
    if (code === EXIT.missing) throw new RunnerError("not_found", `no such file: ${path}`);
    if (code === EXIT.isDir) throw new RunnerError("is_a_directory", `path is a directory: ${path}`);
    if (/read-only/i.test(r.stderr ?? "")) throw new RunnerError("read_only", `path is read-only: ${path}`);
    throw new RunnerError(
      "io_error",
      `file operation on ${path} failed (exit ${code}): ${(r.stderr ?? "").trim().slice(0, 300)}`,
    );
  }

  async exposePort(request: RunnerPortRequest): Promise<RunnerPortResult> {
    this.ensureOpen();
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535)
      throw new RunnerError("invalid_request", `port must be 1..65535, got ${request.port}`);
    const url = this.info.config.public_url_template
      .replaceAll("{app}", this.info.config.app)
      .replaceAll("{port}", String(request.port))
      .replaceAll("{machine_id}", this.info.machineId);
    return { port: request.port, url };
  }

  /**
   * The storage package's direct path: the machine hashes the file (or archives the directory) and uploads it
   * with curl to a signed URL that reaches curl through its environment, never argv.
   */
  async exportArtifact(
    request: RunnerArtifactExportRequest,
    options?: RunnerCallOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.ensureOpen();
    if (this.info.config.artifacts === undefined) {
      throw new UnsupportedCapabilityError({
        providerId: "fly",
        capability: "artifact_export",
        message: "fly: this destination has no artifacts bucket (config.artifacts)",
      });
    }
    const target = parseArtifactTarget("fly", this.info.config.artifacts);
    const path = confinePath(request.path, { root: this.root, access: "read" });
    return exportArtifact({
      providerId: "fly",
      target,
      env: this.info.env,
      // A workspace-local temp dir: each exec may have its own /tmp.
      source: sessionArtifactSource(this, { tmpDir: `${this.root}/.roder/tmp` }),
      request,
      path,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async snapshot(): Promise<RunnerSnapshotRef | null> {
    throw new UnsupportedCapabilityError({
      providerId: "fly",
      capability: "snapshots",
      message: "fly: workspace snapshots need a Fly volume; this provider does not snapshot yet",
    });
  }

  /** Stops and destroys the machine (force); a machine already gone is fine. Idempotent. */
  /**
   * Fly suspend: the machine's memory and file system are snapshotted and its compute stops;
   * `resumeSession(state())` starts it again where it was (mounts and processes included).
   */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    await this.api.call("POST", `${this.path}/suspend`, {
      idempotent: true,
      operation: "suspend machine",
      signal: options?.signal,
      machineId: this.info.machineId,
    });
    await this.api.call("GET", `${this.path}/wait?state=suspended&timeout=60`, {
      idempotent: true,
      operation: "wait for suspend",
      signal: options?.signal,
      machineId: this.info.machineId,
    });
    this.paused = true;
  }

  async close(options?: RunnerCallOptions): Promise<void> {
    if (this.closed) return;
    if (this.paused) this.info.mounted.splice(0);
    // Uploads still in rclone's write-back reach the bucket before the machine goes.
    for (const ref of this.info.mounted.splice(0).reverse())
      await unmountInSandbox(this, ref).catch(() => {});
    this.closed = true;
    await destroyMachine(this.api, this.info.config.app, this.info.machineId, options?.signal);
  }
}

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
