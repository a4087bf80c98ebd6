import {
  cancelledMarker,
  checkTerminalSize,
  OutputQueue,
  type RunnerCommandHandle,
  type RunnerCommandResult,
  RunnerError,
  timeoutMarker,
} from "@roder/runner-contract";
import type { Sandbox } from "e2b";
import type { PtyLaunch } from "./e2b-pty.js";
import type { E2bSession } from "./e2b-session.js";

export type SdkSandbox = Sandbox;
export type SdkHandle = Awaited<ReturnType<SdkSandbox["commands"]["run"]>> & {
  pid: number;
  kill(): Promise<boolean>;
  disconnect(): Promise<void>;
  wait(): Promise<{ exitCode: number; stdout: string; stderr: string }>;
};

/** How a followed command takes input: none, its stdin (envd's pipe), or its terminal (envd's PTY). */
export type InputKind = "none" | "stdin" | "pty";

export interface FollowCallbacks {
  onStdout: (d: string) => void;
  onStderr: (d: string) => void;
  onPty: (d: Uint8Array) => void;
}

/** A command this client follows. */
export interface RunningCommand {
  handle: SdkHandle;
  cancelled: boolean;
}

/**
 * What the command modules need of their session: its sandbox and workspace, the commands it follows, its
 * error mapping, its liveness (the sandbox's timeout moved while commands run), and its own public methods
 * (a detached handle's `wait` attaches again; a handle's `kill` cancels through the session).
 */
export interface E2bCommandContext {
  readonly sandbox: SdkSandbox;
  readonly root: string;
  readonly running: Map<string, RunningCommand>;
  map(error: unknown, operation: string): unknown;
  /** Moves the sandbox's timeout before it is used (see E2bKeepAlive.touch). */
  touch(): Promise<void>;
  /** Starts or stops the keep-alive timer as commands start and end. */
  updateKeepAlive(): void;
  readonly session: Pick<E2bSession, "attachCommand" | "cancelCommand">;
}

/**
 * Opens a command through `open` (a new process, or envd's connection to a running one) and hands out its
 * handle: output as it comes, the result (exit, timeout, cancellation), detach, and for `stdin`/`pty` kinds
 * the writer (and resize).
 */
export async function followCommand(
  ctx: E2bCommandContext,
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
    throw openError(ctx, error, input.cwd);
  }
  const pty = input.kind === "pty";
  const entry = { handle, cancelled: false, detached: false, ended: false, stdinClosed: false };
  ctx.running.set(commandId, entry);
  ctx.updateKeepAlive();
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
      throw ctx.map(error, "run command");
    } finally {
      entry.ended = true;
      output.end();
      signal?.removeEventListener("abort", onAbort);
      if (ctx.running.get(commandId) === entry) ctx.running.delete(commandId);
      ctx.updateKeepAlive();
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
      reattached ??= (async () => (await ctx.session.attachCommand(commandId)).wait())();
      return reattached;
    },
    kill: async () => ctx.session.cancelCommand(commandId),
    detach: async () => {
      entry.detached = true;
      if (ctx.running.get(commandId) === entry) ctx.running.delete(commandId);
      ctx.updateKeepAlive();
      output.end();
      await handle.disconnect().catch(() => {});
    },
  };
  if (input.kind === "none") return handleOut;
  return withInput(ctx, handleOut, entry, input);
}

/** envd checks the working directory before it spawns (invalid_argument): that is the caller's cwd, typed. */
function openError(ctx: E2bCommandContext, error: unknown, cwd: string | undefined): unknown {
  const why = String((error as Error)?.message ?? "");
  if (cwd !== undefined && /cwd '.*' does not exist/.test(why))
    return new RunnerError(
      "not_found",
      `run command: the working directory '${cwd}' does not exist in the sandbox`,
      {
        cause: error,
      },
    );
  if (cwd !== undefined && /chdir .*not a directory/i.test(why))
    return new RunnerError(
      "invalid_request",
      `run command: the working directory '${cwd}' is not a directory`,
      {
        cause: error,
      },
    );
  return ctx.map(error, "run command");
}

/** The handle's `write`, `closeStdin` (and `resize` on a terminal): envd's stdin pipe or its PTY input. */
function withInput(
  ctx: E2bCommandContext,
  handleOut: RunnerCommandHandle,
  entry: RunningCommand & { ended: boolean; stdinClosed: boolean },
  input: { kind: InputKind; launch?: PtyLaunch },
): RunnerCommandHandle {
  const pty = input.kind === "pty";
  const commandId = handleOut.commandId;
  const pid = entry.handle.pid;
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
    return ctx.map(error, operation);
  };
  const send = async (bytes: Uint8Array) => {
    if (pty) {
      // The shell reads the launch line first: input waits until the program has the terminal.
      await input.launch?.ready;
      if (entry.ended) throw stdinClosed();
      await ctx.sandbox.pty.sendInput(pid, bytes);
    } else await ctx.sandbox.commands.sendStdin(pid, bytes);
  };
  handleOut.write = async (data: string | Uint8Array) => {
    if (entry.ended || entry.stdinClosed) throw stdinClosed();
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
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
        await ctx.sandbox.commands.closeStdin(pid);
      }
    } catch (error) {
      const mapped = inputError(error, "close stdin");
      if (!RunnerError.isInstance(mapped) || mapped.code !== "stdin_closed") throw mapped;
    }
  };
  if (pty)
    handleOut.resize = async (cols: number, rows: number) => {
      checkTerminalSize(cols, rows);
      if (entry.ended) return;
      try {
        await ctx.sandbox.pty.resize(pid, { cols, rows });
      } catch (error) {
        if (entry.ended) return;
        throw ctx.map(error, "resize terminal");
      }
    };
  return handleOut;
}
