import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import {
  cancelledMarker,
  checkTerminalSize,
  type OutputBudget,
  OutputLog,
  type RunnerCommandHandle,
  type RunnerCommandResult,
  RunnerError,
  timeoutMarker,
  truncationMarker,
} from "@roder/runner-contract";

export interface SpawnSpec {
  commandId: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeoutMs?: number | undefined;
  outputLimitBytes: number;
  signal?: AbortSignal | undefined;
  stdin?: Uint8Array | undefined;
  /** Keep stdin open for `write()` / `closeStdin()` (an interactive command). */
  interactive?: boolean;
  /** Resizes the command's terminal (a command started on a PTY). */
  resize?: (pid: number, cols: number, rows: number) => Promise<void>;
  /** The session's retained-output budget, shared by its commands. */
  outputBudget?: OutputBudget | undefined;
}

/** Bounded collector for one stream: keeps the first `limit` bytes, counts the rest. */
class Collector {
  private chunks: Buffer[] = [];
  private size = 0;
  dropped = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room >= chunk.length) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    } else {
      if (room > 0) {
        this.chunks.push(chunk.subarray(0, room));
        this.size += room;
      }
      this.dropped += chunk.length - Math.max(room, 0);
    }
  }
  text(): string {
    // Lossy UTF-8, like Rust's String::from_utf8_lossy: invalid sequences become U+FFFD.
    const s = new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(this.chunks));
    return this.dropped > 0 ? s + truncationMarker(this.dropped) : s;
  }
}

export interface LocalCommandHandle extends RunnerCommandHandle {
  readonly pid: number | undefined;
  /** Marks the command cancelled and kills its group. */
  cancel(): boolean;
  readonly finished: boolean;
  /** Another handle on the same command whose `output` replays the retained output, then follows live. */
  follow(): RunnerCommandHandle;
  /** Forgets the retained output (late followers replay nothing), giving its bytes back to the budget. */
  releaseOutput(): void;
  /** Bytes of output retained for late followers. */
  readonly retainedBytes: number;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    try {
      return child.kill(signal);
    } catch {
      return false;
    }
  }
}

/**
 * Spawns argv (no shell) in its own process group. Timeouts and kills hit the whole group, so grandchildren
 * die too. Output is collected with a cap per stream and also streamed to `output`.
 */
export function spawnCommand(spec: SpawnSpec): LocalCommandHandle {
  const [program, ...args] = spec.argv;
  const stdout = new Collector(spec.outputLimitBytes);
  const stderr = new Collector(spec.outputLimitBytes);
  const queue = new OutputLog(undefined, spec.outputBudget);
  let timedOut = false;
  let cancelled = false;
  let finished = false;
  let child: ChildProcess;
  let spawnError: Error | undefined;
  try {
    child = spawn(program!, args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: [spec.stdin || spec.interactive ? "pipe" : "ignore", "pipe", "pipe"],
    });
  } catch (error) {
    spawnError = error as Error;
    child = undefined as unknown as ChildProcess;
  }

  const result = new Promise<RunnerCommandResult>((resolve) => {
    if (spawnError || !child) {
      finished = true;
      queue.end();
      resolve({
        command_id: spec.commandId,
        exit_code: 127,
        stdout: "",
        stderr: `${program}: ${spawnError?.message ?? "spawn failed"}\n`,
      });
      return;
    }
    let exitCode: number | null = null;
    let exited = false;
    let closed = 0;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      spec.signal?.removeEventListener("abort", onAbort);
      queue.end();
      let err = stderr.text();
      if (timedOut) err += timeoutMarker(spec.timeoutMs ?? 0);
      else if (cancelled) err += cancelledMarker();
      resolve({
        command_id: spec.commandId,
        exit_code: timedOut || cancelled ? null : exitCode,
        stdout: stdout.text(),
        stderr: err,
      });
    };
    const onData = (stream: "stdout" | "stderr") => (buf: Buffer) => {
      (stream === "stdout" ? stdout : stderr).push(buf);
      queue.push({ stream, data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) });
    };
    child.stdout!.on("data", onData("stdout"));
    child.stderr!.on("data", onData("stderr"));
    const onClose = () => {
      closed += 1;
      if (closed === 2 && exited) finish();
    };
    child.stdout!.on("close", onClose);
    child.stderr!.on("close", onClose);
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (exited) return;
      exited = true;
      exitCode = error.code === "ENOENT" ? 127 : error.code === "EACCES" ? 126 : 1;
      // spawn says ENOENT for a missing working directory too: name the real cause.
      const why =
        error.code === "ENOENT" && !existsSync(spec.cwd)
          ? "cannot start: the working directory does not exist"
          : error.code === "ENOENT"
            ? "command not found"
            : error.message;
      // The message goes to the stream too, so a streaming caller sees why nothing ran.
      onData("stderr")(Buffer.from(`${program}: ${why}\n`));
      finish();
    });
    child.on("exit", (code, signal) => {
      exited = true;
      exitCode = signal ? null : code;
      if (closed === 2) finish();
      // A background grandchild may hold the pipes open: give it a moment, then stop waiting.
      else graceTimer = setTimeout(finish, 250);
    });
    if (spec.stdin && child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(Buffer.from(spec.stdin));
    } else if (spec.interactive && child.stdin) child.stdin.on("error", () => {});
    const timer =
      spec.timeoutMs !== undefined && spec.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            killGroup(child, "SIGTERM");
            setTimeout(() => killGroup(child, "SIGKILL"), 500).unref();
          }, spec.timeoutMs)
        : undefined;
    const onAbort = () => {
      cancelled = true;
      killGroup(child, "SIGKILL");
    };
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener("abort", onAbort, { once: true });
  });

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (finished || !child) return false;
    if (signal === "SIGKILL" || signal === "SIGTERM") cancelled = true;
    return killGroup(child, signal);
  };
  const stdinClosed = () =>
    new RunnerError(
      "stdin_closed",
      `the stdin of command '${spec.commandId}' is closed or was not kept open`,
    );
  const write = (data: string | Uint8Array): Promise<void> =>
    new Promise((resolve, reject) => {
      const stdin = child?.stdin;
      if (!spec.interactive || !stdin || stdin.writableEnded || stdin.destroyed || finished)
        return reject(stdinClosed());
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
      stdin.write(bytes, (error) => (error ? reject(stdinClosed()) : resolve()));
    });
  const closeStdin = async (): Promise<void> => {
    const stdin = child?.stdin;
    if (spec.interactive && stdin && !stdin.writableEnded) stdin.end();
  };
  const resize = async (cols: number, rows: number): Promise<void> => {
    if (!spec.resize)
      throw new RunnerError("invalid_request", `command '${spec.commandId}' was not started on a terminal`);
    checkTerminalSize(cols, rows);
    if (finished || child?.pid === undefined) return;
    await spec.resize(child.pid, cols, rows);
  };
  const follower = (): RunnerCommandHandle => {
    const f = queue.follow();
    return {
      commandId: spec.commandId,
      output: f.output,
      wait: () => result,
      kill,
      detach: async () => f.stop(),
      replayOffset: f.offset,
      ...(spec.interactive ? { write, closeStdin } : {}),
      ...(spec.resize ? { resize } : {}),
    };
  };
  const first = follower();
  return {
    ...first,
    pid: child?.pid,
    get finished() {
      return finished;
    },
    follow: follower,
    releaseOutput: () => queue.release(),
    get retainedBytes() {
      return queue.retainedBytes;
    },
    cancel() {
      if (finished || !child) return false;
      cancelled = true;
      return killGroup(child, "SIGKILL");
    },
  };
}
