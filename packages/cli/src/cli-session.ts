import { readFileSync } from "node:fs";
import {
  codecs,
  type RemoteRunnerSession,
  RunnerError,
  type RunnerSessionState,
} from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT } from "./cli-base.js";
import { loadDestination } from "./destination.js";
import {
  checkHttpState,
  checkLocalState,
  checkPrivateFile,
  StateGoneError,
  StateRefusedError,
  writePrivateFile,
} from "./state-check.js";
import { describeFsError } from "./sys-errors.js";

/**
 * What the commands that need a session share: opening it (created from a destination or resumed from a checked
 * state file), signals (a running command killed, a pending call aborted; the session closed or its state
 * written before the CLI exits), and where --keep writes the state.
 */
export function sessionKit(a: CommandArgs) {
  const { command, v, io, registry } = a;
  // Commands that need a session.
  // Ctrl-C / SIGTERM / SIGHUP (and a closed stdout): a running command is killed (its result says so, exit
  // 137); otherwise the pending call is aborted (exit 130). Either way the session is closed, or its state
  // written with --keep, before the CLI exits: no session is left behind. A second signal exits at once.
  const abort = new AbortController();
  let onInterrupt: (() => void) | undefined;
  let interrupts = 0;
  const interrupt = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    if (onInterrupt) onInterrupt();
    else abort.abort();
  };
  const stopSignals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

  const readState = (): { state: RunnerSessionState; where: string } => {
    const where = v.session === "-" ? "stdin" : String(v.session);
    let text: string;
    try {
      text = readFileSync(v.session === "-" ? 0 : String(v.session), "utf8");
    } catch (error) {
      throw new CliError(
        `cannot read session state file ${where}: ${describeFsError(error)?.replace(/^cannot \w+ [^:]+: /, "") ?? (error as Error).message}`,
        EXIT.config,
        "write one with 'roder-runner exec --keep --state-out FILE'",
      );
    }
    return { state: codecs.RunnerSessionState.decode(text.trim()), where };
  };
  const checkState = (state: RunnerSessionState, where: string) => {
    // A state file is data, not authority: what it names must be the runner's own before anything runs, and
    // above all before `close` deletes or unmounts anything.
    try {
      if (state.provider_id === "unix-local") checkLocalState(state);
      if (state.provider_id === "http") checkHttpState(state, io.env.RODER_RUNNER_HTTP_URL);
    } catch (error) {
      if (error instanceof StateGoneError) throw new CliError(error.message, EXIT.provider);
      if (error instanceof StateRefusedError)
        throw new CliError(
          `refusing the session state in ${where}: ${error.message}; nothing was touched`,
          EXIT.config,
          "use a state file written by 'roder-runner exec --keep --state-out FILE' on this machine",
        );
      throw error;
    }
  };
  /** `owned`: made by this run (created, or restored from a snapshot): closed at the end unless --keep. */
  const openSession = async (): Promise<{ session: RemoteRunnerSession; owned: boolean }> => {
    if (typeof v.session === "string") {
      const { state, where } = readState();
      checkState(state, where);
      // A state holding a snapshot restores into a new session: this run owns it.
      const session = await registry.resumeSession(state, { signal: abort.signal });
      return { session, owned: state.snapshot !== null };
    }
    if (typeof v.destination !== "string")
      throw new CliError(
        `${command} needs --destination or --session`,
        EXIT.usage,
        `run 'roder-runner ${command} --help'`,
      );
    const destination = loadDestination(v.destination);
    try {
      return {
        session: await registry.createSession(destination, { signal: abort.signal }),
        owned: true,
      };
    } catch (error) {
      // A provider that is not set up (no API answer: a variable it needs is unset) is a configuration
      // problem, whatever error class the provider used for it. A refusal by the API stays a provider error.
      const setupHint = registry.list().find((p) => p.id === destination.provider_id)?.setupHint;
      const status = (error as { statusCode?: number }).statusCode;
      const named = RunnerError.isInstance(error)
        ? /\bset ([A-Z][A-Z0-9_]{2,})/.exec(error.message)?.[1]
        : undefined;
      if (setupHint && named && status === undefined)
        throw new CliError(
          (error as Error).message,
          EXIT.config,
          `export ${named}=… in the environment (secrets are read from env only); run 'roder-runner providers' for what else is missing`,
        );
      throw error;
    }
  };
  const stateOut = v["state-out"] as string | undefined;
  if (stateOut !== undefined && !v.keep && command !== "snapshot")
    throw new CliError("--state-out applies with --keep", EXIT.usage, "add --keep to leave the session up");
  /** Writes a session's state where --state-out says (stdout for `-`; default stderr, or stdout for restore). */
  const writeState = (session: RemoteRunnerSession, fallback: "stderr" | "stdout") => {
    const state = `${codecs.RunnerSessionState.encode(session.state())}\n`;
    if (stateOut === "-" || (stateOut === undefined && fallback === "stdout")) io.stdout(state);
    else if (stateOut !== undefined) {
      try {
        writePrivateFile(stateOut, state);
      } catch (error) {
        if (error instanceof StateRefusedError)
          throw new CliError(`--state-out: ${error.message}`, EXIT.config, "pass a path of your own");
        throw error;
      }
    } else io.stderr(`session state: ${state}`);
  };
  /** The state file must be writable before a session is made for it (else the session would be orphaned). */
  const checkStateOut = () => {
    if (stateOut === undefined || stateOut === "-") return;
    try {
      checkPrivateFile(stateOut);
    } catch (error) {
      if (error instanceof StateRefusedError)
        throw new CliError(`--state-out: ${error.message}`, EXIT.config, "pass a path of your own");
      throw error;
    }
  };
  /**
   * Runs `fn` on the session, then closes it (a session this run made) or writes its state (--keep). When the
   * state cannot be written, a session this run made is closed rather than left behind.
   */
  const withSession = async <T>(fn: (session: RemoteRunnerSession) => Promise<T>): Promise<T> => {
    checkStateOut();
    for (const s of stopSignals) process.on(s, interrupt);
    let opened: { session: RemoteRunnerSession; owned: boolean } | undefined;
    try {
      opened = await openSession();
      if (abort.signal.aborted) throw new CliError("interrupted", EXIT.interrupted);
      return await fn(opened.session);
    } finally {
      // The signal handlers stay until the session is closed: a signal now must not end the CLI mid-close.
      try {
        if (opened) {
          const { session, owned } = opened;
          if (v.keep) {
            try {
              writeState(session, "stderr");
            } catch (error) {
              if (owned) await session.close().catch(() => {});
              // biome-ignore lint/correctness/noUnsafeFinally: the state could not be handed over; that is the error
              throw error;
            }
          } else if (owned) await session.close();
        }
      } finally {
        for (const s of stopSignals) process.off(s, interrupt);
      }
    }
  };

  return {
    abort,
    interrupt,
    stopSignals,
    readState,
    checkState,
    openSession,
    stateOut,
    writeState,
    checkStateOut,
    withSession,
    /** What a signal does while a command runs (kill it); undefined: abort the pending call. */
    setInterrupt: (fn: (() => void) | undefined) => {
      onInterrupt = fn;
    },
  };
}

export type SessionKit = ReturnType<typeof sessionKit>;
