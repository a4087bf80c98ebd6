import { createHash, randomBytes } from "node:crypto";
import {
  CancelledError,
  CommandNotFoundError,
  cancelledMarker,
  OutputQueue,
  PathOutsideWorkspaceError,
  ProviderApiError,
  parseCommandInput,
  parseFileWriteInput,
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
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSignal,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionNotFoundError,
  sandboxViewPath,
  timeoutMarker,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { type SandboxMountRef, unmountInSandbox } from "@roder/runner-storage";
import type { ExecResult, FlyApi } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";
import {
  destroyMachineAndVolume,
  exportFromMachine,
  machinePortUrl,
  snapshotsUnsupported,
  suspendMachine,
} from "./fly-machine-ops.js";
import { DISCARD, EXIT, FOLLOW, KILL, READ, START, WRITE } from "./fly-scripts.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What one START/FOLLOW exec reports about a command (see fly-scripts.ts). */
interface PollReport {
  exit: number | null;
  cancelled: boolean;
  outSize: number;
  errSize: number;
  elapsedMs: number | null;
  /** The command's time limit as started (ms; 0 = none): an attached follower knows it too. */
  limitMs: number;
  out: Buffer;
  err: Buffer;
}

function parsePoll(stdout: string | undefined): PollReport {
  const [head = "", out = "", err = ""] = (stdout ?? "").split("\n");
  const [ex, c, os, es, t0, t1, lim] = head.split(" ");
  if (os === undefined || es === undefined)
    throw new RunnerError(
      "provider_api",
      `fly: unexpected answer from the command follower: ${head.slice(0, 80)}`,
    );
  const start = Number(t0);
  const end = Number(t1);
  return {
    exit: ex === "-" || ex === undefined ? null : Number(ex),
    cancelled: c === "1",
    outSize: Number(os),
    errSize: Number(es),
    elapsedMs: start > 0 && end > 0 ? (end - start) / 1e6 : null,
    limitMs: Math.round(Number(lim ?? 0) * 1000) || 0,
    out: Buffer.from(out, "base64"),
    err: Buffer.from(err, "base64"),
  };
}

export interface FlySessionTuning {
  /** Largest part of a file moved by one exec, and of each output stream per poll (bytes). */
  chunkBytes: number;
}

export class FlySession implements RemoteRunnerSession {
  private closed = false;
  private paused = false;
  private readonly running = new Map<string, { cancelled: boolean }>();
  /** Seconds one follower exec is held in the machine; halved when the API edge answers 408 sooner. */
  private hold: number;

  constructor(
    private readonly api: FlyApi,
    readonly info: {
      machineId: string;
      destinationId: string;
      config: FlyDestinationConfig;
      env: Record<string, string | undefined>;
      /** Buckets mounted in the machine at create (rclone + FUSE): unmounted, write-back drained, at close. */
      mounted: SandboxMountRef[];
      /** Written in the workspace at create: resumeSession checks it is still there (see FlyWorkspaceLostError). */
      marker?: string;
      tuning?: FlySessionTuning;
      /** The workspace's Fly volume (created with the machine, deleted at close). */
      volumeId?: string;
    },
  ) {
    this.hold = info.config.exec_hold_s;
  }

  private get root(): string {
    return this.info.config.workspace_root;
  }

  private get path(): string {
    return `/apps/${this.info.config.app}/machines/${this.info.machineId}`;
  }

  private get chunkBytes(): number {
    return this.info.tuning?.chunkBytes ?? 4 * 1024 * 1024;
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
        ...(this.info.marker ? { marker: this.info.marker } : {}),
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

  /**
   * One exec call: argv, optional stdin, exec timeout in seconds. `idempotent`: the program may run twice
   * (reads, polls), so a 408, 5xx or dropped connection is retried; otherwise only a 429 is.
   */
  exec(
    command: string[],
    o: {
      stdin?: string;
      timeoutS: number;
      signal?: AbortSignal | undefined;
      operation: string;
      idempotent?: boolean;
      /** A 408 goes back to the caller (which holds shorter) instead of being retried as it was. */
      retry408?: boolean;
    },
  ): Promise<ExecResult> {
    return this.api.call<ExecResult>("POST", `${this.path}/exec`, {
      body: { command, timeout: o.timeoutS, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) },
      idempotent: o.idempotent ?? false,
      ...(o.retry408 === false ? { retry408: false } : {}),
      operation: o.operation,
      signal: o.signal,
      machineId: this.info.machineId,
    });
  }

  /** The directory of a command in the machine (a hash of its id: any id, fixed length). */
  private commandDir(commandId: string): string {
    return `${this.root}/.roder/cmd/${createHash("sha256").update(commandId).digest("hex").slice(0, 32)}`;
  }

  private get tenths(): number {
    return Math.max(1, Math.round(this.hold * 10));
  }

  private get execTimeoutS(): number {
    return Math.ceil(this.hold) + 10;
  }

  /**
   * Follows a command from the offsets in `seen` until it ends: each poll is one exec held up to `hold`
   * seconds in the machine (mode `done`: until the command ends; `output`: until it prints). Polls repeat with
   * no gap while the command runs (each waits in the machine), and back off after failures.
   */
  private async follow(
    dir: string,
    first: PollReport | null,
    o: {
      mode: "done" | "output";
      signal?: AbortSignal | undefined;
      commandId: string;
      onChunk?: (stream: "stdout" | "stderr", data: Buffer) => void;
      seen?: { out: number; err: number };
    },
  ): Promise<{ report: PollReport; out: Buffer[]; err: Buffer[] }> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const seen = o.seen ?? { out: 0, err: 0 };
    let report = first;
    let failures = 0;
    for (;;) {
      if (report) {
        if (report.out.length) {
          out.push(report.out);
          seen.out += report.out.length;
          o.onChunk?.("stdout", report.out);
        }
        if (report.err.length) {
          err.push(report.err);
          seen.err += report.err.length;
          o.onChunk?.("stderr", report.err);
        }
        if (report.exit !== null && seen.out >= report.outSize && seen.err >= report.errSize)
          return { report, out, err };
      }
      const finished = report?.exit !== null && report !== null;
      try {
        const r = await this.exec(
          [
            "/bin/sh",
            "-c",
            FOLLOW,
            "roder-follow",
            dir,
            String(seen.out),
            String(seen.err),
            finished ? "0" : String(this.tenths),
            String(Math.floor(this.chunkBytes / 2)),
            o.mode,
          ],
          {
            timeoutS: this.execTimeoutS,
            signal: o.signal,
            operation: "follow command",
            idempotent: true,
            retry408: false,
          },
        );
        if ((r.exit_code ?? 0) === EXIT.missing)
          throw new CommandNotFoundError({
            providerId: "fly",
            commandId: o.commandId,
            message: `fly: command '${o.commandId}' is not known in machine ${this.info.machineId}`,
          });
        report = parsePoll(r.stdout);
        failures = 0;
      } catch (error) {
        // The API edge gave up on a held request: hold shorter from now on, and poll again.
        if (ProviderApiError.isInstance(error) && error.statusCode === 408 && failures < 5) {
          this.hold = Math.max(0.5, this.hold / 2);
          failures += 1;
          report = null;
          continue;
        }
        throw error;
      }
    }
  }

  private validateCommand(input: RunnerCommandRequestInput) {
    const request = parseCommandInput(input);
    const cwd = sandboxViewPath(request.cwd ?? this.root, this.root);
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
    return { request, cwd };
  }

  /**
   * Starts the command detached in the machine (one exec that then waits up to `hold` seconds for it). A 408 or
   * a dropped connection leaves it unknown whether it started: a poll tells, and only a command that never
   * started is started again.
   */
  private async launch(
    request: ReturnType<FlySession["validateCommand"]>["request"],
    cwd: string,
    o: { mode: "done" | "output"; waitTenths: number; signal?: AbortSignal | undefined },
  ): Promise<PollReport> {
    const dir = this.commandDir(request.command_id);
    const launchId = randomBytes(8).toString("hex");
    const limitS = request.timeout_ms
      ? (request.timeout_ms / 1000).toFixed(3)
      : String(this.info.config.default_exec_timeout_s ?? 0);
    const argv = [
      "/bin/sh",
      "-c",
      START,
      "roder-start",
      dir,
      cwd,
      limitS,
      String(o.waitTenths),
      String(Math.floor(this.chunkBytes / 2)),
      o.mode,
      launchId,
    ];
    // argv and env travel on stdin (base64 lines), never on a command line.
    const b64 = (v: string) => Buffer.from(v).toString("base64");
    const envBlock = [
      ...[request.program, ...request.args].map((a) => `A ${b64(a)}\n`),
      ...request.env.map(([k, v]) => `E ${k} ${b64(v)}\n`),
    ].join("");
    // Whether it started, when the answer was lost or cut short: null = it never did.
    const probe = async (): Promise<PollReport | null> => {
      const r = await this.exec(
        ["/bin/sh", "-c", FOLLOW, "roder-follow", dir, "0", "0", "0", "0", o.mode, launchId],
        {
          timeoutS: 30,
          signal: o.signal,
          operation: "follow command",
          idempotent: true,
        },
      );
      if ((r.exit_code ?? 0) === EXIT.missing) return null;
      return parsePoll(r.stdout);
    };
    for (let attempt = 0; ; attempt++) {
      let r: ExecResult;
      try {
        r = await this.exec(argv, {
          stdin: envBlock,
          timeoutS: this.execTimeoutS,
          signal: o.signal,
          operation: "run command",
        });
      } catch (error) {
        const unknownOutcome =
          ProviderApiError.isInstance(error) &&
          (error.statusCode === 408 || error.statusCode === undefined || error.statusCode >= 500);
        if (!unknownOutcome || attempt >= 2 || o.signal?.aborted) throw error;
        if (ProviderApiError.isInstance(error) && error.statusCode === 408)
          this.hold = Math.max(0.5, this.hold / 2);
        const seen = await probe();
        if (seen) return seen;
        continue;
      }
      const code = r.exit_code ?? 0;
      if (code === EXIT.running)
        throw new RunnerError("invalid_request", `command id '${request.command_id}' is already running`);
      if (code === EXIT.io)
        throw new RunnerError(
          "io_error",
          `fly: could not start the command: ${(r.stderr ?? "").trim().slice(0, 300)}`,
        );
      if (code === 0 && !r.exit_signal) {
        try {
          return parsePoll(r.stdout);
        } catch {}
      }
      // The starter itself was cut short (killed by the command, say): what the machine has tells.
      const seen = await probe();
      if (seen) return seen;
      if (attempt >= 2)
        throw new RunnerError(
          "provider_api",
          `fly: could not start the command (exit ${code}): ${(r.stderr ?? "").trim().slice(0, 300)}`,
        );
    }
  }

  /** The contract's result from what the machine reported. */
  private result(
    request: { command_id: string; timeout_ms?: number | undefined },
    report: PollReport,
    out: Buffer[],
    err: Buffer[],
    cancelled: boolean,
  ): RunnerCommandResult {
    const stdout = Buffer.concat(out).toString("utf8");
    let stderr = Buffer.concat(err).toString("utf8");
    if (cancelled || report.cancelled)
      return { command_id: request.command_id, exit_code: null, stdout, stderr: stderr + cancelledMarker() };
    const limit = request.timeout_ms ?? report.limitMs;
    // timeout(1) answers 124 at the limit (137 when the KILL after it was needed); the clock in the machine says
    // whether the limit was really reached, so a program that exits 124 on its own is not taken for a timeout.
    if (
      limit > 0 &&
      (report.exit === 124 || report.exit === 137) &&
      report.elapsedMs !== null &&
      report.elapsedMs >= limit - 5
    ) {
      stderr += timeoutMarker(limit);
      return { command_id: request.command_id, exit_code: null, stdout, stderr };
    }
    // timeout(1) reports a program it could not run as 126/127, like a shell.
    return { command_id: request.command_id, exit_code: report.exit, stdout, stderr };
  }

  async runCommand(
    input: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "runCommand" });
    const { request, cwd } = this.validateCommand(input);
    const dir = this.commandDir(request.command_id);
    const entry = { cancelled: false };
    this.running.set(request.command_id, entry);
    // Aborting drops the exec request, which does not stop the process on the machine: kill it through a
    // second exec ("arm": also when it has not started yet) before answering.
    let killing: Promise<unknown> | undefined;
    const onAbort = () => {
      entry.cancelled = true;
      killing = this.kill(request.command_id, "KILL", true).catch(() => undefined);
    };
    options?.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const first = await this.launch(request, cwd, {
        mode: "done",
        waitTenths: this.tenths,
        signal: options?.signal,
      });
      const { report, out, err } = await this.follow(dir, first, {
        mode: "done",
        signal: options?.signal,
        commandId: request.command_id,
      });
      return this.result(request, report, out, err, entry.cancelled);
    } catch (error) {
      if (killing) {
        await killing;
        throw new CancelledError({ operation: "runCommand" }, { cause: error });
      }
      throw error;
    } finally {
      options?.signal?.removeEventListener("abort", onAbort);
      this.running.delete(request.command_id);
    }
  }

  /**
   * Starts the command detached in the machine and follows it: each poll is one exec held until the command
   * prints or ends, so output arrives in chunks as it is polled. The command's output stays in the machine:
   * after `detach()`, `attachCommand` from this or any other process (a session resumed from `state()`) follows
   * it again, replaying it from the start. `signal` aborts the command.
   */
  async startCommand(
    input: RunnerStartCommandInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    // Exec mode has no channel to a running command's stdin and no terminal: refused, never ignored.
    if (input.pty !== undefined)
      throw new UnsupportedCapabilityError({
        providerId: "fly",
        capability: "pty",
        message:
          "fly: exec mode cannot run a command on a terminal (a command is detached and polled through exec, which has no stdin or terminal to a running command)",
      });
    if (input.stdin === true)
      throw new UnsupportedCapabilityError({
        providerId: "fly",
        capability: "stdin",
        message:
          "fly: exec mode cannot write to a running command's stdin (a command is detached and polled through exec); pass input as a file (writeFile) or in argv instead",
      });
    if (options?.signal?.aborted) throw new CancelledError({ operation: "startCommand" });
    const { request, cwd } = this.validateCommand(input);
    const entry = { cancelled: false };
    this.running.set(request.command_id, entry);
    let first: PollReport;
    try {
      // Held until the first output (at most a second), so a chunk is often there when the handle is.
      first = await this.launch(request, cwd, {
        mode: "output",
        waitTenths: Math.min(10, this.tenths),
        signal: options?.signal,
      });
    } catch (error) {
      this.running.delete(request.command_id);
      if (options?.signal?.aborted) {
        await this.kill(request.command_id, "KILL", true).catch(() => false);
        throw new CancelledError({ operation: "startCommand" }, { cause: error });
      }
      throw error;
    }
    return this.handle(request.command_id, request.timeout_ms, first, entry, options?.signal, () =>
      this.running.delete(request.command_id),
    );
  }

  /**
   * Follows a command started with `startCommand` (by this or any other client of the machine), replaying its
   * output from the start; `CommandNotFoundError` when the machine has no such command (or forgot it: finished
   * commands are kept 10 minutes).
   */
  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    if (options?.signal?.aborted) throw new CancelledError({ operation: "attachCommand" });
    const r = await this.exec(
      [
        "/bin/sh",
        "-c",
        FOLLOW,
        "roder-follow",
        this.commandDir(commandId),
        "0",
        "0",
        "0",
        String(Math.floor(this.chunkBytes / 2)),
        "output",
      ],
      { timeoutS: 30, signal: options?.signal, operation: "attach command", idempotent: true },
    );
    if ((r.exit_code ?? 0) === EXIT.missing)
      throw new CommandNotFoundError({
        providerId: "fly",
        commandId,
        message: `fly: machine ${this.info.machineId} has no command '${commandId}'`,
      });
    const handle = this.handle(
      commandId,
      undefined,
      parsePoll(r.stdout),
      { cancelled: false },
      options?.signal,
    );
    return Object.assign(handle, { replayOffset: { stdout: 0, stderr: 0 } });
  }

  private handle(
    commandId: string,
    timeoutMs: number | undefined,
    first: PollReport,
    entry: { cancelled: boolean },
    signal: AbortSignal | undefined,
    onEnd?: () => void,
  ): RunnerCommandHandle {
    const queue = new OutputQueue();
    const dir = this.commandDir(commandId);
    const following = new AbortController();
    let detached = false;
    let killing: Promise<unknown> | undefined;
    const onAbort = () => {
      entry.cancelled = true;
      killing = this.kill(commandId, "KILL", true).catch(() => false);
      following.abort();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const request = { command_id: commandId, timeout_ms: timeoutMs };
    const followed = (async () => {
      try {
        const { report, out, err } = await this.follow(dir, first, {
          mode: "output",
          signal: following.signal,
          commandId,
          onChunk: (stream, data) => queue.push({ stream, data: new Uint8Array(data) }),
        });
        return this.result(request, report, out, err, entry.cancelled);
      } finally {
        queue.end();
        signal?.removeEventListener("abort", onAbort);
        if (!detached) onEnd?.();
      }
    })();
    followed.catch(() => {});
    let waited: Promise<RunnerCommandResult> | undefined;
    const wait = (): Promise<RunnerCommandResult> => {
      waited ??= followed.catch(async (error: unknown) => {
        if (killing) {
          await killing;
          throw new CancelledError({ operation: "startCommand" }, { cause: error });
        }
        if (!detached) throw error;
        // Detached: the command goes on in the machine; its result is read there, from the start.
        const { report, out, err } = await this.follow(dir, null, { mode: "done", commandId });
        onEnd?.();
        return this.result(request, report, out, err, entry.cancelled);
      });
      return waited;
    };
    return {
      commandId,
      output: queue,
      wait,
      kill: (sig?: RunnerSignal) => this.kill(commandId, sig ?? "KILL", false),
      detach: async () => {
        if (detached) return;
        detached = true;
        following.abort();
        queue.end();
      },
    };
  }

  /** Signals the command's process group through an exec (`arm`: also when it has not started yet). */
  private async kill(commandId: string, sig: string, arm: boolean, signal?: AbortSignal): Promise<boolean> {
    const name = sig.replace(/^SIG/, "");
    if (!/^[A-Z0-9]+$/.test(name)) throw new RunnerError("invalid_request", `invalid signal '${sig}'`);
    const r = await this.exec(
      ["/bin/sh", "-c", KILL, "roder-kill", this.commandDir(commandId), arm ? "arm" : "", name],
      { timeoutS: 30, signal, operation: "cancel command" },
    );
    return (r.exit_code ?? 0) === 0;
  }

  /** Kills the command's process group through an exec; `true` when it was running. */
  async cancelCommand(commandId: string, options?: RunnerCallOptions): Promise<boolean> {
    this.ensureOpen();
    const killed = await this.kill(commandId, "KILL", false, options?.signal);
    const entry = this.running.get(commandId);
    if (killed && entry) entry.cancelled = true;
    return killed;
  }

  /** Reads in parts of at most `chunkBytes`, one exec each (the first also gives the size). */
  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen();
    const p = sandboxViewPath(request.path, this.root);
    const parts: Buffer[] = [];
    let offset = 0;
    for (;;) {
      const r = await this.exec(
        ["/bin/sh", "-c", READ, "roder-read", p, String(offset), String(this.chunkBytes), "/"],
        { timeoutS: 120, signal: options?.signal, operation: "read file", idempotent: true },
      );
      this.fileError(r, request.path);
      const nl = (r.stdout ?? "").indexOf("\n");
      const size = Number((r.stdout ?? "").slice(0, nl));
      const part = Buffer.from((r.stdout ?? "").slice(nl + 1), "base64");
      parts.push(part);
      offset += part.length;
      if (offset >= size || part.length === 0) break;
    }
    const all = Buffer.concat(parts);
    return { path: request.path, contents: new Uint8Array(all.buffer, all.byteOffset, all.byteLength) };
  }

  /** Writes in parts of at most `chunkBytes` to a temp file beside the target, renamed over it at the end. */
  async writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    const request = parseFileWriteInput(input);
    this.ensureOpen();
    const p = sandboxViewPath(request.path, this.root);
    if (p === this.root || p === "/")
      throw new PathOutsideWorkspaceError({
        path: request.path,
        root: this.root,
        reason: "cannot write over the workspace root",
      });
    const bytes = Buffer.from(
      request.contents.buffer,
      request.contents.byteOffset,
      request.contents.byteLength,
    );
    const tmp = randomBytes(6).toString("hex");
    const count = Math.max(1, Math.ceil(bytes.length / this.chunkBytes));
    try {
      for (let i = 0; i < count; i++) {
        const part = count === 1 ? "only" : i === 0 ? "first" : i === count - 1 ? "last" : "next";
        const r = await this.exec(["/bin/sh", "-c", WRITE, "roder-write", p, tmp, part, "/"], {
          stdin: bytes.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes).toString("base64"),
          timeoutS: 120,
          signal: options?.signal,
          operation: "write file",
          // The first part truncates: sending it twice does no harm. Later parts append.
          idempotent: part === "first" || part === "only",
        });
        this.fileError(r, request.path);
      }
    } catch (error) {
      if (count > 1)
        await this.exec(["/bin/sh", "-c", DISCARD, "roder-discard", p, tmp], {
          timeoutS: 30,
          operation: "discard partial write",
        }).catch(() => {});
      throw error;
    }
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

  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.ensureOpen();
    return machinePortUrl(this.info, input);
  }

  /**
   * The storage package's direct path: the machine hashes the file (or archives the directory) and uploads it
   * with curl to a signed URL that reaches curl through its environment, never argv.
   */
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

  /**
   * Fly suspend: the machine's memory and file system are snapshotted and its compute stops;
   * `resumeSession(state())` starts it again where it was (mounts and processes included).
   */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    await suspendMachine(this.api, this.info, options?.signal);
    this.paused = true;
  }

  /** Stops and destroys the machine (force), then its volume; a machine already gone is fine. Idempotent. */
  async close(options?: RunnerCallOptions): Promise<void> {
    if (this.closed) return;
    if (this.paused) this.info.mounted.splice(0);
    // Uploads still in rclone's write-back reach the bucket before the machine goes.
    for (const ref of this.info.mounted.splice(0).reverse())
      await unmountInSandbox(this, ref).catch(() => {});
    this.closed = true;
    await destroyMachineAndVolume(this.api, this.info, destroyMachine, options?.signal);
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
