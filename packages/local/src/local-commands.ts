import { execFile } from "node:child_process";
import { readlinkSync } from "node:fs";
import { promisify } from "node:util";
import {
  argvToShell,
  CommandNotFoundError,
  checkPty,
  isWithin,
  OutputBudget,
  PathOutsideWorkspaceError,
  parseCommandInput,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  RunnerError,
  type RunnerStartCommandInput,
  sandboxViewPath,
} from "@roder/runner-contract";
import { sandboxCommand } from "./local-bwrap.js";
import { cgroupCommand, SESSION_MARKER } from "./local-cgroup.js";
import { resolveRunnerPath } from "./local-fs.js";
import { descendants } from "./local-proc.js";
import { type LocalCommandHandle, spawnCommand } from "./local-process.js";
import { outsidePath } from "./local-session-files.js";
import {
  checkAborted,
  LOCAL_PROVIDER_ID,
  runnerRootOf,
  type SessionContext,
  sandboxScopeOf,
} from "./local-session-info.js";

// A session's commands: started in its sandbox (or its cgroup), kept per session so that any session object of
// this process can attach to them, with their retained output bounded per session.

const run = promisify(execFile);

/**
 * Resizes the terminal of a command started on a PTY: the first process below it whose stdin is a terminal
 * holds the PTY's slave; `stty` sets its size through that descriptor (the kernel sends SIGWINCH).
 */
async function resizeTerminal(pid: number, cols: number, rows: number): Promise<void> {
  for (const p of descendants(pid)) {
    let link = "";
    try {
      link = readlinkSync(`/proc/${p}/fd/0`);
    } catch {
      continue;
    }
    if (!/\/pts\/\d+$/.test(link)) continue;
    await run("stty", ["-F", `/proc/${p}/fd/0`, "cols", String(cols), "rows", String(rows)]);
    return;
  }
  throw new RunnerError("io_error", "the command's terminal is gone");
}

/** Commands of every live session of this process, by session id, so any session object can attach. */
const COMMANDS = new Map<
  string,
  {
    running: Map<string, LocalCommandHandle>;
    ended: Map<string, LocalCommandHandle>;
    budget: OutputBudget;
  }
>();
/**
 * Output retained for late followers, per session, across its commands (running and ended): past it, the output
 * of ended commands is forgotten first (oldest first), then each running command drops its own oldest chunks.
 */
export const SESSION_RETAINED_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Ended commands kept per session for a late `attachCommand` (their output and result). */
const ENDED_KEPT = 32;

function commandsOf(sessionId: string) {
  let c = COMMANDS.get(sessionId);
  if (!c) {
    const ended = new Map<string, LocalCommandHandle>();
    const budget = new OutputBudget(SESSION_RETAINED_OUTPUT_BYTES);
    budget.onOver = () => {
      for (const h of ended.values()) {
        if (budget.used <= budget.max) break;
        h.releaseOutput();
      }
    };
    c = { running: new Map(), ended, budget };
    COMMANDS.set(sessionId, c);
  }
  return c;
}

function baseEnv(runnerRoot: string): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: runnerRoot,
    LANG: "C.UTF-8",
    TMPDIR: "/tmp",
    RODER_WORKSPACE: runnerRoot,
  };
}

/** Starts a command of the session (`startCommand`): its argv, cwd and environment checked first. */
export async function startSessionCommand(
  ctx: SessionContext,
  input: RunnerStartCommandInput,
  options: RunnerCallOptions | undefined,
): Promise<LocalCommandHandle> {
  const { info, runtime, confinement } = ctx;
  const runnerRoot = runnerRootOf(info);
  checkAborted(options?.signal, "runCommand");
  const { stdin: interactive, pty, ...wire } = (input ?? {}) as RunnerStartCommandInput;
  const request = parseCommandInput(wire);
  if (pty !== undefined) checkPty(pty);
  if (commandsOf(info.sessionId).running.has(request.command_id)) {
    throw new RunnerError(
      "invalid_request",
      `command id '${request.command_id}' is already running in this session`,
    );
  }
  // In the sandbox's scope a cwd outside the workspace (or one whose symlinks lead out) is a path of the
  // sandbox's own view (under bwrap checked there by `env -C`).
  let outsideCwd = request.cwd ? outsidePath(ctx, request.cwd) : null;
  const cwd =
    outsideCwd ??
    (await resolveRunnerPath(confinement, request.cwd ?? runnerRoot, "cwd").catch((error) => {
      if (!sandboxScopeOf(info, runtime) || !request.cwd || !PathOutsideWorkspaceError.isInstance(error))
        throw error;
      outsideCwd = sandboxViewPath(request.cwd, runnerRoot);
      return outsideCwd;
    }));
  // A cwd in a read root is at the same path for commands (bound there read-only under bwrap).
  const runnerCwd =
    !outsideCwd && isWithin(cwd, info.workspaceRoot)
      ? runnerRoot + cwd.slice(info.workspaceRoot.length)
      : cwd;
  const env = baseEnv(runnerRoot);
  for (const [k, v] of request.env) {
    if (k === "" || k.includes("=") || k.includes("\u0000") || v.includes("\u0000")) {
      throw new RunnerError(
        "invalid_request",
        `invalid environment variable name or value for '${k.replace(/\u0000/g, "\\0")}'`,
      );
    }
    env[k] = v;
  }
  let argv = [request.program, ...request.args];
  if (argv.some((a) => a.includes("\u0000")))
    throw new RunnerError("invalid_request", "argv entries cannot contain NUL bytes");
  if (pty) {
    // On a terminal: util-linux `script` makes a PTY, sizes it and runs the argv on it (quoted, byte for byte).
    env.TERM ??= "xterm-256color";
    argv = [
      "script",
      "-qefc",
      `stty cols ${pty.cols} rows ${pty.rows} 2>/dev/null; exec ${argvToShell(argv)}`,
      "/dev/null",
    ];
  }
  let spawnCwd = cwd;
  const sandbox = await ctx.liveSandbox();
  if (sandbox?.kind === "bwrap") {
    argv = sandboxCommand(
      { setpriv: runtime.setpriv!, nsenter: runtime.nsenter! },
      sandbox,
      argv,
      runnerCwd,
      runnerRoot,
    );
    spawnCwd = "/";
  } else {
    env[SESSION_MARKER] = info.sessionId;
    if (sandbox?.kind === "cgroup") argv = cgroupCommand(sandbox, argv);
  }
  const commands = commandsOf(info.sessionId);
  const handle = spawnCommand({
    outputBudget: commands.budget,
    commandId: request.command_id,
    argv,
    cwd: spawnCwd,
    env,
    timeoutMs: request.timeout_ms,
    outputLimitBytes: info.config.output_limit_bytes,
    signal: options?.signal,
    interactive: interactive === true || pty !== undefined,
    ...(pty ? { resize: resizeTerminal } : {}),
  });
  commands.running.set(request.command_id, handle);
  void handle.wait().finally(() => {
    if (commands.running.get(request.command_id) !== handle) return;
    commands.running.delete(request.command_id);
    commands.ended.delete(request.command_id);
    commands.ended.set(request.command_id, handle);
    if (commands.ended.size > ENDED_KEPT) {
      const oldest = commands.ended.keys().next().value!;
      commands.ended.get(oldest)?.releaseOutput();
      commands.ended.delete(oldest);
    }
  });
  return handle;
}

/** A follower of a running or recently ended command of the session (`attachCommand`). */
export function attachSessionCommand(sessionId: string, commandId: string): RunnerCommandHandle {
  const commands = commandsOf(sessionId);
  const handle = commands.running.get(commandId) ?? commands.ended.get(commandId);
  if (!handle)
    throw new CommandNotFoundError({
      providerId: LOCAL_PROVIDER_ID,
      commandId,
      message: `no command '${commandId}' in session '${sessionId}' of this process`,
    });
  return handle.follow();
}

/** Cancels a running command of the session; whether it was killed (false if it had ended). */
export async function cancelSessionCommand(sessionId: string, commandId: string): Promise<boolean> {
  const handle = commandsOf(sessionId).running.get(commandId);
  if (!handle || handle.finished) return false;
  const killed = handle.cancel();
  await handle.wait();
  return killed;
}

/** Cancels every running command of the session, waits for them, and forgets the session's commands. */
export async function endSessionCommands(sessionId: string): Promise<void> {
  const running = [...commandsOf(sessionId).running.values()];
  for (const handle of running) handle.cancel();
  await Promise.all(running.map((h) => h.wait()));
  COMMANDS.delete(sessionId);
}
