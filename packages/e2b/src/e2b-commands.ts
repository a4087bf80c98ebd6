import {
  argvToShell,
  CancelledError,
  CommandNotFoundError,
  checkPty,
  parseCommandInput,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  RunnerError,
  type RunnerStartCommandInput,
  sandboxViewPath,
} from "@roder/runner-contract";
import {
  type E2bCommandContext,
  followCommand,
  type InputKind,
  type SdkHandle,
} from "./e2b-command-follow.js";
import { PtyLaunch } from "./e2b-pty.js";
import { shellEnv } from "./e2b-shell-env.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Env variable that names a command's id inside the sandbox, so `attachCommand` can find its process. */
export const COMMAND_ID_ENV = "RODER_COMMAND_ID";
/** Env variable that says how a command takes input (`stdin` or `pty`), so an attached handle can write to it. */
export const COMMAND_INPUT_ENV = "RODER_COMMAND_INPUT";

/** Starts a command (pipes, or a terminal) and follows it (see `E2bSession.startCommand`). */
export async function startE2bCommand(
  ctx: E2bCommandContext,
  input: RunnerStartCommandInput,
  options?: RunnerCallOptions,
): Promise<RunnerCommandHandle> {
  if (options?.signal?.aborted) throw new CancelledError({ operation: "runCommand" });
  const { stdin: keepStdin, pty, ...wire } = (input ?? {}) as RunnerStartCommandInput;
  const request = parseCommandInput(wire);
  if (pty !== undefined) checkPty(pty);
  await ctx.touch();
  // The sandbox is its own machine: a cwd is any directory of its view (relative: the workspace's).
  const cwd = sandboxViewPath(request.cwd ?? ctx.root, ctx.root);
  const asked: Record<string, string> = {};
  for (const [k, v] of request.env) {
    if (!ENV_NAME.test(k))
      throw new RunnerError("invalid_request", `invalid environment variable name '${k}'`);
    asked[k] = v; // a repeated name keeps its last value
  }
  if (ctx.running.has(request.command_id))
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
    return followCommand(
      ctx,
      request.command_id,
      request.timeout_ms,
      options?.signal,
      { kind, launch, cwd },
      async (callbacks) => {
        const handle = (await ctx.sandbox.pty.create({
          cols: pty.cols,
          rows: pty.rows,
          cwd,
          envs: { ...envs, ...launch.env },
          timeoutMs,
          onData: callbacks.onPty,
        })) as unknown as SdkHandle;
        try {
          await ctx.sandbox.pty.sendInput(handle.pid, launch.line);
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
  return followCommand(
    ctx,
    request.command_id,
    request.timeout_ms,
    options?.signal,
    { kind, cwd },
    (callbacks) =>
      ctx.sandbox.commands.run(line, {
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
async function findProcess(
  ctx: E2bCommandContext,
  commandId: string,
  signal?: AbortSignal,
): Promise<{ pid: number; kind: InputKind } | undefined> {
  try {
    const list = await ctx.sandbox.commands.list(signal ? ({ signal } as object) : undefined);
    const p = list.find((x) => x.envs?.[COMMAND_ID_ENV] === commandId);
    if (!p) return undefined;
    const input = p.envs?.[COMMAND_INPUT_ENV];
    return { pid: p.pid, kind: input === "pty" || input === "stdin" ? input : "none" };
  } catch (error) {
    throw ctx.map(error, "list commands");
  }
}

/** Follows a running command again through envd, found by its RODER_COMMAND_ID env. */
export async function attachE2bCommand(
  ctx: E2bCommandContext,
  commandId: string,
  options?: RunnerCallOptions,
): Promise<RunnerCommandHandle> {
  if (options?.signal?.aborted) throw new CancelledError({ operation: "attachCommand" });
  await ctx.touch();
  const found = await findProcess(ctx, commandId, options?.signal);
  if (found === undefined)
    throw new CommandNotFoundError({
      providerId: "e2b",
      commandId,
      message: `no running command '${commandId}' in sandbox ${ctx.sandbox.sandboxId} (ended commands are not kept)`,
    });
  const { pid, kind } = found;
  return followCommand(ctx, commandId, undefined, options?.signal, { kind }, (callbacks) =>
    kind === "pty"
      ? (ctx.sandbox.pty.connect(pid, {
          timeoutMs: 0,
          onData: callbacks.onPty,
        }) as unknown as Promise<SdkHandle>)
      : (ctx.sandbox.commands.connect(pid, {
          timeoutMs: 0,
          onStdout: callbacks.onStdout,
          onStderr: callbacks.onStderr,
        }) as unknown as Promise<SdkHandle>),
  );
}

/** Kills the command: through its handle when this client follows it, else found through envd. */
export async function cancelE2bCommand(ctx: E2bCommandContext, commandId: string): Promise<boolean> {
  await ctx.touch();
  const entry = ctx.running.get(commandId);
  if (!entry) {
    // Started by another client (or detached): find its process through envd.
    const found = await findProcess(ctx, commandId);
    if (found === undefined) return false;
    return ctx.sandbox.commands.kill(found.pid).catch((error: unknown) => {
      throw ctx.map(error, "cancel command");
    });
  }
  entry.cancelled = true;
  const killed = await entry.handle.kill().catch(() => false);
  if (!killed) entry.cancelled = false;
  return killed;
}
