import {
  commandOutcome,
  type RemoteRunnerSession,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT, type Io } from "../cli-base.js";
import type { SessionKit } from "../cli-session.js";
import { forwardInput, onDroppedInput, type StdinMode, stdinMode, terminalSize } from "../terminal.js";

/** `roder-runner exec`: runs a command, streams its output, forwards stdin, exits with its code. */
export async function execCommand(a: CommandArgs, kit: SessionKit): Promise<number> {
  const { v, tail, io } = a;
  const { abort, stateOut, withSession } = kit;
  if (tail.length === 0)
    throw new CliError("exec needs a program after --", EXIT.usage, "roder-runner exec -d local -- echo hi");
  const env: [string, string][] = ((v.env as string[] | undefined) ?? []).map((pair) => {
    const i = pair.indexOf("=");
    if (i <= 0) throw new CliError(`--env takes K=V, got '${pair}'`, EXIT.usage);
    return [pair.slice(0, i), pair.slice(i + 1)];
  });
  const timeout = v.timeout === undefined ? undefined : Number(v.timeout);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0))
    throw new CliError("--timeout takes a positive number of milliseconds", EXIT.usage);
  if (v.session === "-" && (v.tty || v.interactive))
    throw new CliError(
      "-i and -t forward stdin, and --session - reads the state from it",
      EXIT.usage,
      "pass the state as a file: --session FILE",
    );
  const mode = stdinMode({
    tty: v.tty === true,
    interactive: v.interactive === true,
    stateOnStdin: v.session === "-",
  });
  // With the state on stdout (--state-out -), the command's stdout goes to stderr: `state=$(…)` gets the state
  // alone.
  const out = v.keep && stateOut === "-" ? io.stderr : io.stdout;
  return withSession(async (session) => {
    const request = {
      command_id: `cli-${process.pid}-${Date.now()}`,
      program: tail[0]!,
      args: tail.slice(1),
      cwd: (v.cwd as string | undefined) ?? null,
      env,
      ...(timeout ? { timeout_ms: timeout } : {}),
    };
    let result: RunnerCommandResult;
    const provider = session.state().provider_id;
    const dropped = () =>
      io.stderr(
        `roder-runner: warning: stdin is not forwarded: provider '${provider}' cannot write to a running command's stdin\n`,
      );
    if (session.startCommand) {
      const handle = await startWithInput(session, request, mode, io, abort.signal);
      // Signals kill the remote command; its result then reports the kill (exit 137).
      kit.setInterrupt(() => void handle.kill());
      const stopInput =
        handle.write || mode === "none" ? forwardInput(handle, mode, io.env) : onDroppedInput(dropped);
      try {
        for await (const chunk of handle.output) (chunk.stream === "stdout" ? out : io.stderr)(chunk.data);
        result = await handle.wait();
      } finally {
        stopInput();
        kit.setInterrupt(undefined);
      }
    } else {
      if (mode === "pty" || mode === "interactive")
        throw new CliError(
          `provider '${session.state().provider_id}' cannot stream a command, so -i and -t cannot work`,
          EXIT.provider,
        );
      const stopInput = mode === "piped" ? onDroppedInput(dropped) : () => {};
      result = await session.runCommand(request, { signal: abort.signal }).finally(stopInput);
      out(result.stdout);
      io.stderr(result.stderr);
    }
    const outcome = commandOutcome(result);
    if (outcome.timedOut) {
      io.stderr(`roder-runner: command timed out after ${timeout} ms\n`);
      return EXIT.timeout;
    }
    return result.exit_code ?? EXIT.killed;
  });
}

/** Starts the command attached as `mode` says; a piped stdin the provider cannot take is warned about. */
async function startWithInput(
  session: RemoteRunnerSession,
  request: RunnerCommandRequestInput,
  mode: StdinMode,
  io: Io,
  signal: AbortSignal,
): Promise<RunnerCommandHandle> {
  const provider = session.state().provider_id;
  const attach =
    mode === "pty" ? { pty: terminalSize(io.env) } : mode === "none" ? {} : { stdin: true as const };
  let handle: RunnerCommandHandle;
  try {
    handle = await session.startCommand!({ ...request, ...attach }, { signal });
  } catch (error) {
    // A piped stdin the provider cannot take: warned about if input actually comes (see onDroppedInput).
    if (mode !== "piped" || !UnsupportedCapabilityError.isInstance(error)) throw error;
    return session.startCommand!(request, { signal });
  }
  if (mode !== "none" && !handle.write) {
    if (mode !== "piped") {
      await handle.kill();
      await handle.wait();
      throw new CliError(
        `provider '${provider}' cannot write to a running command's stdin, so ${mode === "pty" ? "-t" : "-i"} cannot work`,
        EXIT.provider,
      );
    }
  }
  return handle;
}
