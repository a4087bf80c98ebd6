import {
  CancelledError,
  CommandNotFoundError,
  OutputQueue,
  parseCommandInput,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  RunnerError,
  type RunnerSignal,
  type RunnerStartCommandInput,
  sandboxViewPath,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import {
  commandDir,
  commandResult,
  type FlyExecContext,
  followCommand,
  holdTenths,
  killCommand,
  launchCommand,
  type PollReport,
  parsePoll,
  pollBytes,
} from "./fly-exec-follow.js";
import { EXIT, FOLLOW } from "./fly-scripts.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function validateCommand(ctx: FlyExecContext, input: RunnerCommandRequestInput) {
  const request = parseCommandInput(input);
  const cwd = sandboxViewPath(request.cwd ?? ctx.root, ctx.root);
  for (const [k, v] of request.env) {
    if (!ENV_NAME.test(k))
      throw new RunnerError("invalid_request", `invalid environment variable name '${k}'`);
    if (v.includes("\u0000"))
      throw new RunnerError("invalid_request", `environment variable '${k}' contains a NUL byte`);
  }
  if ([request.program, ...request.args].some((a) => a.includes("\u0000")))
    throw new RunnerError("invalid_request", "argv entries cannot contain NUL bytes");
  if (ctx.running.has(request.command_id))
    throw new RunnerError("invalid_request", `command id '${request.command_id}' is already running`);
  return { request, cwd };
}

/** Runs a command to its end: started detached, then followed by held polls (see `followCommand`). */
export async function runExecCommand(
  ctx: FlyExecContext,
  input: RunnerCommandRequestInput,
  options?: RunnerCallOptions,
): Promise<RunnerCommandResult> {
  if (options?.signal?.aborted) throw new CancelledError({ operation: "runCommand" });
  const { request, cwd } = validateCommand(ctx, input);
  const dir = commandDir(ctx, request.command_id);
  const entry = { cancelled: false };
  ctx.running.set(request.command_id, entry);
  // Aborting drops the exec request, which does not stop the process on the machine: kill it through a
  // second exec ("arm": also when it has not started yet) before answering.
  let killing: Promise<unknown> | undefined;
  const onAbort = () => {
    entry.cancelled = true;
    killing = killCommand(ctx, request.command_id, "KILL", true).catch(() => undefined);
  };
  options?.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const first = await launchCommand(ctx, request, cwd, {
      mode: "done",
      waitTenths: holdTenths(ctx),
      signal: options?.signal,
    });
    const { report, out, err } = await followCommand(ctx, dir, first, {
      mode: "done",
      signal: options?.signal,
      commandId: request.command_id,
    });
    return commandResult(request, report, out, err, entry.cancelled);
  } catch (error) {
    if (killing) {
      await killing;
      throw new CancelledError({ operation: "runCommand" }, { cause: error });
    }
    throw error;
  } finally {
    options?.signal?.removeEventListener("abort", onAbort);
    ctx.running.delete(request.command_id);
  }
}

/** Starts a command detached and hands out a handle that follows it (see `FlySession.startCommand`). */
export async function startExecCommand(
  ctx: FlyExecContext,
  input: RunnerStartCommandInput,
  options?: RunnerCallOptions,
): Promise<RunnerCommandHandle> {
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
  const { request, cwd } = validateCommand(ctx, input);
  const entry = { cancelled: false };
  ctx.running.set(request.command_id, entry);
  let first: PollReport;
  try {
    // Held until the first output (at most a second), so a chunk is often there when the handle is.
    first = await launchCommand(ctx, request, cwd, {
      mode: "output",
      waitTenths: Math.min(10, holdTenths(ctx)),
      signal: options?.signal,
    });
  } catch (error) {
    ctx.running.delete(request.command_id);
    if (options?.signal?.aborted) {
      await killCommand(ctx, request.command_id, "KILL", true).catch(() => false);
      throw new CancelledError({ operation: "startCommand" }, { cause: error });
    }
    throw error;
  }
  return commandHandle(ctx, request.command_id, request.timeout_ms, first, entry, options?.signal, () =>
    ctx.running.delete(request.command_id),
  );
}

/** Follows a command the machine knows again, replaying its output from the start. */
export async function attachExecCommand(
  ctx: FlyExecContext,
  commandId: string,
  options?: RunnerCallOptions,
): Promise<RunnerCommandHandle> {
  if (options?.signal?.aborted) throw new CancelledError({ operation: "attachCommand" });
  const r = await ctx.exec(
    [
      "/bin/sh",
      "-c",
      FOLLOW,
      "roder-follow",
      commandDir(ctx, commandId),
      "0",
      "0",
      "0",
      pollBytes(ctx),
      "output",
    ],
    { timeoutS: 30, signal: options?.signal, operation: "attach command", idempotent: true },
  );
  if ((r.exit_code ?? 0) === EXIT.missing)
    throw new CommandNotFoundError({
      providerId: "fly",
      commandId,
      message: `fly: machine ${ctx.machineId} has no command '${commandId}'`,
    });
  const handle = commandHandle(
    ctx,
    commandId,
    undefined,
    parsePoll(r.stdout),
    { cancelled: false },
    options?.signal,
  );
  return Object.assign(handle, { replayOffset: { stdout: 0, stderr: 0 } });
}

/** Kills the command's process group through an exec; `true` when it was running. */
export async function cancelExecCommand(
  ctx: FlyExecContext,
  commandId: string,
  options?: RunnerCallOptions,
): Promise<boolean> {
  const killed = await killCommand(ctx, commandId, "KILL", false, options?.signal);
  const entry = ctx.running.get(commandId);
  if (killed && entry) entry.cancelled = true;
  return killed;
}

function commandHandle(
  ctx: FlyExecContext,
  commandId: string,
  timeoutMs: number | undefined,
  first: PollReport,
  entry: { cancelled: boolean },
  signal: AbortSignal | undefined,
  onEnd?: () => void,
): RunnerCommandHandle {
  const queue = new OutputQueue();
  const dir = commandDir(ctx, commandId);
  const following = new AbortController();
  let detached = false;
  let killing: Promise<unknown> | undefined;
  const onAbort = () => {
    entry.cancelled = true;
    killing = killCommand(ctx, commandId, "KILL", true).catch(() => false);
    following.abort();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const request = { command_id: commandId, timeout_ms: timeoutMs };
  const followed = (async () => {
    try {
      const { report, out, err } = await followCommand(ctx, dir, first, {
        mode: "output",
        signal: following.signal,
        commandId,
        onChunk: (stream, data) => queue.push({ stream, data: new Uint8Array(data) }),
      });
      return commandResult(request, report, out, err, entry.cancelled);
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
      const { report, out, err } = await followCommand(ctx, dir, null, { mode: "done", commandId });
      onEnd?.();
      return commandResult(request, report, out, err, entry.cancelled);
    });
    return waited;
  };
  return {
    commandId,
    output: queue,
    wait,
    kill: (sig?: RunnerSignal) => killCommand(ctx, commandId, sig ?? "KILL", false),
    detach: async () => {
      if (detached) return;
      detached = true;
      following.abort();
      queue.end();
    },
  };
}
