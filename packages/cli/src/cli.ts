import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { parseArgs } from "node:util";
import {
  CancelledError,
  codecs,
  commandOutcome,
  createRunnerRegistry,
  MissingDependencyError,
  type RemoteRunnerSession,
  type RunnerCapabilities,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  type RunnerDestination,
  RunnerError,
  type RunnerExportProgress,
  type RunnerSessionState,
  SessionNotFoundError,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { parse as parseToml } from "smol-toml";
import { checkDestination, download, openSource, upload } from "./copy.js";
import { missingWith } from "./missing-deps.js";
import { createProgress, humanBytes, transferSummary } from "./progress.js";
import { loadProviders } from "./providers.js";
import {
  canDelete,
  deleteHttpSnapshot,
  findSnapshot,
  forgetSnapshot,
  type IndexedSnapshot,
  listSnapshots,
  recordSnapshot,
} from "./snapshots.js";
import {
  checkHttpState,
  checkLocalState,
  checkPrivateFile,
  StateGoneError,
  StateRefusedError,
  writePrivateFile,
} from "./state-check.js";
import { describeConnectionError, describeFsError, errnoOf } from "./sys-errors.js";
import { forwardInput, onDroppedInput, type StdinMode, stdinMode, terminalSize } from "./terminal.js";

export const VERSION = "0.1.0";

/** Documented exit codes. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  provider: 4,
  timeout: 124,
  interrupted: 130,
  killed: 137,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface Io {
  stdout: (s: string | Uint8Array) => void;
  stderr: (s: string | Uint8Array) => void;
  env: Record<string, string | undefined>;
  isTTY: boolean;
}

const HELP: Record<string, string> = {
  main: `roder-runner ${VERSION}: run commands in remote sandboxes (local, http, fly, e2b)

Usage: roder-runner <command> [options]

Commands:
  providers [--json]                     installed providers, capabilities, setup hints
  exec --destination D -- PROGRAM ARGS   run a command (streams output, exits with its code)
  cp SRC DST                             copy between host paths and runner:PATH
  export PATH [--recursive]              export an artifact to the destination's bucket
  snapshot [list|restore ID|rm ID]       snapshot a kept session; list, restore, delete snapshots
  close                                  close a kept session (idempotent)
  serve [--provider local]               serve the HTTP runner protocol in front of a provider
  sweep --provider P --owner O          remove expired sessions a crashed caller left (fly, e2b, local, http)

Run 'roder-runner <command> --help' for a command's options.
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 provider/API error, 124 timeout, 130 interrupted,
137 killed;
exec exits with the command's own code.
Secrets come from the environment only (RODER_SECRET_<ID>_<FIELD>, E2B_API_KEY, FLY_API_TOKEN, ...).`,
  providers:
    "Usage: roder-runner providers [--json]\n  Lists installed providers with their capabilities and setup hints (names of missing env variables, never values).",
  exec: `Usage: roder-runner exec (--destination FILE|ID | --session STATE) [options] -- PROGRAM [ARGS...]
  --destination, -d FILE|ID   destination JSON/TOML file, or a built-in id: local
  --session, -s FILE|-        resume the session stored in FILE (from --keep); - reads stdin
  --keep                      leave the session up and write its RunnerSessionState JSON
  --state-out FILE|-          where --keep writes the state (file, mode 0600; - = stdout, and the command's
                              stdout then goes to stderr; default stderr)
  -i, --interactive           keep stdin open and forward it (also from a terminal); piped stdin is
                              forwarded without -i
  -t, --tty                   run the command on a terminal (size from ours, resized with it; our terminal
                              in raw mode, so Ctrl-C reaches the command)
  --timeout MS                kill the command after MS milliseconds (exit 124)
  --cwd PATH                  working directory (runner path)
  --env K=V                   environment pair (repeatable)`,
  cp: "Usage: roder-runner cp (--destination D | --session S) [--keep] SRC DST\n  One of SRC/DST is runner:PATH, the other a host path; - is stdin (as SRC) or stdout (as DST).\n  Streams with bounded memory; progress (bytes, percent, rate) on a terminal.",
  export:
    "Usage: roder-runner export (--destination D | --session S) PATH [--recursive]\n  Prints the RunnerArtifactExportResult as JSON; shows progress on a terminal.",
  snapshot: `Usage: roder-runner snapshot --session S           take one: prints the RunnerSnapshotRef as JSON
       roder-runner snapshot list [--json]            the snapshots taken from this CLI
       roder-runner snapshot restore ID|FILE [--state-out FILE|-]
                                                      a new session from it; its state on stdout (or FILE)
       roder-runner snapshot rm ID|FILE               delete it (local store, runner server) and forget it
  The index lives in RODER_RUNNER_STATE_DIR (default $XDG_STATE_HOME/roder-runner or ~/.local/state/roder-runner).`,
  close: "Usage: roder-runner close --session S\n  Idempotent: a session already closed or expired exits 0.",
  sweep:
    "Usage: roder-runner sweep --provider fly|e2b|local|http --owner OWNER [--app APP] [--root DIR] [--url URL] [--dry-run] [--json]\n  Lists the sessions tagged with owner OWNER and removes those past their expiry.\n  fly: in app APP (needs --app); e2b: E2B_API_KEY; local: workspaces under DIR (default the provider's root);\n  http: the server at URL (or RODER_RUNNER_HTTP_URL), token RODER_RUNNER_HTTP_TOKEN.",
  serve: `Usage: roder-runner serve [--provider local] [--port N] [--host 127.0.0.1] [options]
  Token from RODER_RUNNER_SERVER_TOKEN. Stops on SIGINT/SIGTERM. What weakens isolation is this operator's
  choice, never a client's (clients asking for it get 403 config_refused):
  --isolation bwrap|none      every session under bubblewrap (default where bwrap is installed, local
                              provider); 'none' runs commands as this user on this host (a warning is printed)
  --host-is-sandbox           with --isolation none: this host IS the sandbox (a Fly machine, a VM or container
                              of its own), so the file API and cwd address its whole view, not the workspace
  --allow-host-network        clients may ask for network "host"
  --allow-keep-workspaces     clients may ask for delete_on_close false
  --max-output-bytes N        cap on a client's output_limit_bytes (default 16 MiB)
  --allow-endpoint URL        a bucket endpoint clients may name for the server's secrets (repeatable)
  --allow-host-paths          clients may name paths of this host (manifest entry sources, provider_native
                              mounts, workspace_dir/snapshot_dir/read_roots)
  --strict-config             refuse config keys the backend does not know (default: ignored and listed)
  --session-ttl S             sessions created without ttl_seconds close after S idle seconds (default 3600;
                              0 = never)
  --public-url URL            the URL clients reach this server by (port previews are handed out under it)
  --max-sessions N            live sessions at most (default 1000; more are refused with 429)`,
};

const BUILTIN: Record<string, RunnerDestination> = {
  local: {
    id: "local",
    provider_id: "unix-local",
    config: {},
    default_manifest: { entries: [], mounts: [] },
  },
};

export function loadDestination(ref: string): RunnerDestination {
  if (BUILTIN[ref]) return BUILTIN[ref]!;
  let text: string;
  try {
    text = readFileSync(ref, "utf8");
  } catch {
    throw new CliError(
      `destination '${ref}' is neither a file nor a built-in id`,
      EXIT.config,
      `built-in ids: ${Object.keys(BUILTIN).join(", ")}; or pass a .json/.toml file`,
    );
  }
  let raw: unknown;
  try {
    raw = ref.endsWith(".toml") ? parseToml(text) : JSON.parse(text);
  } catch (error) {
    throw new CliError(
      `destination file ${ref} is not valid ${ref.endsWith(".toml") ? "TOML" : "JSON"}: ${(error as Error).message.split("\n")[0]}`,
      EXIT.config,
    );
  }
  try {
    return codecs.RunnerDestination.parse(raw);
  } catch (error) {
    throw new CliError(
      `destination file ${ref}: ${(error as Error).message}`,
      EXIT.config,
      "see the RunnerDestination fields: id, provider_id, config, default_manifest",
    );
  }
}

function capsLine(c: RunnerCapabilities): string {
  const flags = (
    [
      "command_exec",
      "file_read",
      "file_write",
      "port_preview",
      "snapshots",
      "cancellation",
      "artifact_export",
    ] as const
  ).filter((k) => c[k]);
  const mounts = Object.entries(c.mounts)
    .filter(([, v]) => v)
    .map(([k]) => k);
  return `${flags.join(", ")}${mounts.length ? `; mounts: ${mounts.join(", ")}` : ""}`;
}

function mapError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof StateRefusedError) return new CliError(error.message, EXIT.config);
  if (CancelledError.isInstance(error)) return new CliError("interrupted", EXIT.interrupted);
  if (MissingDependencyError.isInstance(error)) {
    // Name every missing package of the group at once: one install line, not one per try.
    const all = missingWith(error.dependency);
    const purpose = error.message.split(" needs '")[0];
    return new CliError(
      `${purpose} needs ${all.join(", ")}, ${all.length > 1 ? "which are" : "which is"} not installed`,
      EXIT.config,
      `npm install ${all.join(" ")}`,
    );
  }
  const connection = describeConnectionError(error);
  if (connection) return new CliError(connection, EXIT.provider);
  if (RunnerError.isInstance(error)) {
    const config = [
      "invalid_destination_config",
      "secret_in_config",
      "missing_secret",
      "invalid_secret",
      "wire_decode",
      "invalid_mount_uri",
      "unknown_provider",
      "path_outside_workspace",
      "invalid_request",
    ].includes(error.code);
    if (error.code === "unknown_provider") {
      const id = /'([^']+)'/.exec(error.message)?.[1];
      const pkg = id === "e2b" ? "@roder/runner-e2b" : undefined;
      return new CliError(
        error.message,
        EXIT.config,
        pkg
          ? `npm install ${missingWith(pkg).join(" ")}`
          : "install the provider package, e.g. npm install @roder/runner-e2b",
      );
    }
    const hint = error.code === "missing_secret" ? "set the variables named above" : undefined;
    return new CliError(error.message, config ? EXIT.config : EXIT.provider, hint);
  }
  const fs = describeFsError(error);
  if (fs) return new CliError(fs, EXIT.failure);
  return new CliError((error as Error)?.message ?? String(error), EXIT.failure);
}

export async function main(argv: string[], io: Io): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    const e = mapError(error);
    io.stderr(`roder-runner: error: ${e.message.split("\n")[0]}\n`);
    if (e.hint) io.stderr(`hint: ${e.hint}\n`);
    return e.exitCode;
  }
}

async function run(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    io.stdout(`${HELP.main}\n`);
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === "--version" || command === "-v") {
    io.stdout(`${VERSION}\n`);
    return EXIT.ok;
  }
  if (!HELP[command])
    throw new CliError(
      `unknown command '${command}'`,
      EXIT.usage,
      "run 'roder-runner --help' for the commands",
    );
  const dashdash = rest.indexOf("--");
  const own = dashdash >= 0 ? rest.slice(0, dashdash) : rest;
  const tail = dashdash >= 0 ? rest.slice(dashdash + 1) : [];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        json: { type: "boolean" },
        destination: { type: "string", short: "d" },
        session: { type: "string", short: "s" },
        keep: { type: "boolean" },
        interactive: { type: "boolean", short: "i" },
        tty: { type: "boolean", short: "t" },
        "state-out": { type: "string" },
        timeout: { type: "string" },
        cwd: { type: "string" },
        env: { type: "string", multiple: true },
        recursive: { type: "boolean", short: "r" },
        provider: { type: "string" },
        owner: { type: "string" },
        app: { type: "string" },
        root: { type: "string" },
        url: { type: "string" },
        "dry-run": { type: "boolean" },
        port: { type: "string" },
        host: { type: "string" },
        "allow-host-paths": { type: "boolean" },
        "session-ttl": { type: "string" },
        isolation: { type: "string" },
        "host-is-sandbox": { type: "boolean" },
        "allow-host-network": { type: "boolean" },
        "allow-keep-workspaces": { type: "boolean" },
        "max-output-bytes": { type: "string" },
        "allow-endpoint": { type: "string", multiple: true },
        "strict-config": { type: "boolean" },
        "public-url": { type: "string" },
        "max-sessions": { type: "string" },
      },
    });
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.usage, `run 'roder-runner ${command} --help'`);
  }
  const v = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (v.help) {
    io.stdout(`${HELP[command]}\n`);
    return EXIT.ok;
  }
  const providers = await loadProviders(io.env);
  const registry = createRunnerRegistry(providers);

  if (command === "providers") {
    const list = registry.list();
    if (v.json) {
      io.stdout(
        `${JSON.stringify(
          list.map((p) => ({
            id: p.id,
            capabilities: JSON.parse(codecs.RunnerCapabilities.encode(p.capabilities)),
            setup_hint: p.setupHint,
          })),
          null,
          2,
        )}\n`,
      );
      return EXIT.ok;
    }
    const w = Math.max(...list.map((p) => p.id.length), 8);
    io.stdout(`${"PROVIDER".padEnd(w)}  CAPABILITIES\n`);
    for (const p of list) {
      io.stdout(`${p.id.padEnd(w)}  ${capsLine(p.capabilities)}\n`);
      if (p.setupHint) io.stdout(`${" ".repeat(w)}  setup: ${p.setupHint}\n`);
    }
    return EXIT.ok;
  }

  if (command === "sweep") {
    const { runSweep } = await import("./sweep.js");
    return runSweep(v, io);
  }

  if (command === "serve") {
    const { serveRunner } = await import("@roder/runner-http");
    const id = (v.provider as string | undefined) ?? "local";
    const port = Number(v.port ?? 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new CliError(`--port takes 0-65535, got '${v.port}'`, EXIT.usage, "--port 0 picks a free port");
    const ttl = v["session-ttl"] === undefined ? undefined : Number(v["session-ttl"]);
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 0 || ttl > 365 * 24 * 3600))
      throw new CliError(
        `--session-ttl takes whole seconds from 0 (never) to 31536000, got '${v["session-ttl"]}'`,
        EXIT.usage,
        "--session-ttl 3600 closes a session an hour after its last request",
      );
    const maxOut = v["max-output-bytes"] === undefined ? undefined : Number(v["max-output-bytes"]);
    if (maxOut !== undefined && (!Number.isInteger(maxOut) || maxOut <= 0))
      throw new CliError(
        `--max-output-bytes takes a positive number of bytes, got '${v["max-output-bytes"]}'`,
        EXIT.usage,
      );
    const maxSessions = v["max-sessions"] === undefined ? undefined : Number(v["max-sessions"]);
    if (maxSessions !== undefined && (!Number.isInteger(maxSessions) || maxSessions <= 0))
      throw new CliError(`--max-sessions takes a positive number, got '${v["max-sessions"]}'`, EXIT.usage);
    const endpoints = (v["allow-endpoint"] as string[] | undefined) ?? [];
    for (const e of endpoints)
      if (!/^https?:\/\/[^/]/.test(e))
        throw new CliError(`--allow-endpoint takes an http(s) URL, got '${e}'`, EXIT.usage);
    const providerId = id === "local" ? "unix-local" : id;
    const isolation = serveIsolation(v.isolation as string | undefined, providerId, io);
    if (v["host-is-sandbox"] === true && isolation !== "none")
      throw new CliError(
        "--host-is-sandbox needs the local provider with --isolation none (it says this host is the sandbox)",
        EXIT.usage,
      );
    const provider =
      v["host-is-sandbox"] === true
        ? (await import("@roder/runner-local")).createLocalProvider({ env: io.env, hostIsSandbox: true })
        : registry.get(providerId);
    const backendConfigKeys = providerId === "unix-local" ? await localConfigKeys() : undefined;
    const server = await serveRunner({
      provider,
      env: io.env,
      port,
      host: (v.host as string | undefined) ?? "127.0.0.1",
      allowHostPaths: v["allow-host-paths"] === true,
      allowHostNetwork: v["allow-host-network"] === true,
      allowKeepWorkspaces: v["allow-keep-workspaces"] === true,
      strictConfig: v["strict-config"] === true,
      ...(endpoints.length ? { allowedEndpoints: endpoints } : {}),
      ...(maxOut !== undefined ? { maxOutputLimitBytes: maxOut } : {}),
      ...(maxSessions !== undefined ? { maxSessions } : {}),
      ...(isolation ? { isolation } : {}),
      ...(backendConfigKeys ? { backendConfigKeys } : {}),
      ...(typeof v["public-url"] === "string" ? { publicUrl: v["public-url"] } : {}),
      ...(ttl !== undefined ? { defaultTtlSeconds: ttl } : {}),
    }).catch((error) => {
      throw RunnerError.isInstance(error) && error.code === "missing_secret"
        ? new CliError(error.message, EXIT.config, "export RODER_RUNNER_SERVER_TOKEN=$(openssl rand -hex 24)")
        : error;
    });
    const scope = v["host-is-sandbox"] === true ? ", host is the sandbox" : "";
    io.stdout(
      `serving ${provider.id} on ${server.url}${isolation ? ` (isolation ${isolation}${scope})` : ""}\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await server.close();
    io.stderr("stopped\n");
    return EXIT.ok;
  }

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

  if (command === "exec") {
    if (tail.length === 0)
      throw new CliError(
        "exec needs a program after --",
        EXIT.usage,
        "roder-runner exec -d local -- echo hi",
      );
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
        const handle = await startWithInput(session, request, mode);
        // Signals kill the remote command; its result then reports the kill (exit 137).
        onInterrupt = () => void handle.kill();
        const stopInput =
          handle.write || mode === "none" ? forwardInput(handle, mode, io.env) : onDroppedInput(dropped);
        try {
          for await (const chunk of handle.output) (chunk.stream === "stdout" ? out : io.stderr)(chunk.data);
          result = await handle.wait();
        } finally {
          stopInput();
          onInterrupt = undefined;
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
  ): Promise<RunnerCommandHandle> {
    const provider = session.state().provider_id;
    const attach =
      mode === "pty" ? { pty: terminalSize(io.env) } : mode === "none" ? {} : { stdin: true as const };
    let handle: RunnerCommandHandle;
    try {
      handle = await session.startCommand!({ ...request, ...attach }, { signal: abort.signal });
    } catch (error) {
      // A piped stdin the provider cannot take: warned about if input actually comes (see onDroppedInput).
      if (mode !== "piped" || !UnsupportedCapabilityError.isInstance(error)) throw error;
      return session.startCommand!(request, { signal: abort.signal });
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

  if (command === "cp") {
    const [src, dst] = parsed.positionals;
    if (!src || !dst)
      throw new CliError(
        "cp needs SRC and DST",
        EXIT.usage,
        "roder-runner cp -d local ./file runner:dir/file",
      );
    const remote = (p: string) => p.startsWith("runner:");
    if (remote(src) === remote(dst))
      throw new CliError("exactly one of SRC and DST must be runner:PATH", EXIT.usage);
    if (dst === "-" && stateOut === "-")
      throw new CliError("cp to stdout and --state-out - would mix the file and the state", EXIT.usage);
    if (src === "-" && v.session === "-")
      throw new CliError("cp from stdin and --session - would both read stdin", EXIT.usage);
    // Open the host side first: a missing source or an unwritable target fails before a session is made.
    if (!remote(src) && src !== "-") openSource(src).stream.destroy();
    if (!remote(dst)) checkDestination(dst);
    const started = Date.now();
    const progress = (total: number | undefined) =>
      createProgress({
        label: `cp ${src}`,
        total,
        enabled: io.isTTY,
        write: (s) => io.stderr(s),
      });
    return withSession(async (session) => {
      const moved = remote(dst)
        ? await upload(session, src, dst.slice(7), progress, abort.signal)
        : await download(session, src.slice(7), dst, io.stdout, progress, abort.signal);
      if (io.isTTY) io.stderr(`copied ${src} → ${dst}: ${transferSummary(moved, started)}\n`);
      return EXIT.ok;
    });
  }

  if (command === "export") {
    const [path] = parsed.positionals;
    if (!path) throw new CliError("export needs a PATH", EXIT.usage);
    if (stateOut === "-")
      throw new CliError(
        "export prints its result on stdout: --state-out - would mix it with the state",
        EXIT.usage,
        "pass --state-out FILE",
      );
    return withSession(async (session) => {
      // On a terminal: what the export is doing (preparing, uploading with bytes / total, percent and rate as
      // the store acknowledges each part, verifying), then a summary; piped output gets only the JSON.
      const started = Date.now();
      let bar: ReturnType<typeof createProgress> | undefined;
      let phase = "";
      const onProgress = (p: RunnerExportProgress) => {
        if (p.phase === "uploading" || (p.phase === "verifying" && phase !== "verifying")) {
          bar ??= createProgress({
            label: `export ${path}`,
            total: p.total,
            enabled: true,
            write: (s) => io.stderr(s),
          });
          bar.update(p.bytes);
        }
        if (p.phase !== phase && (p.phase === "preparing" || p.phase === "verifying"))
          io.stderr(`\r\x1b[K${p.phase === "preparing" ? `preparing ${path}…` : `verifying ${path}…`}`);
        phase = p.phase;
      };
      const result = await session
        .exportArtifact(
          { path, recursive: Boolean(v.recursive) },
          { signal: abort.signal, ...(io.isTTY ? { onProgress } : {}) },
        )
        .finally(() => {
          if (io.isTTY) io.stderr("\r\x1b[K");
        });
      const meta = result.metadata as { size?: number } | null;
      if (io.isTTY && typeof meta?.size === "number")
        io.stderr(`exported ${path}: ${transferSummary(meta.size, started)}\n`);
      io.stdout(`${codecs.RunnerArtifactExportResult.encodePretty(result)}\n`);
      return EXIT.ok;
    });
  }

  if (command === "snapshot") return snapshotCommand();

  if (command === "close") {
    if (typeof v.session !== "string") throw new CliError("close needs --session FILE", EXIT.usage);
    const { state, where } = readState();
    // Closing is idempotent: a session already closed (or expired) is not an error.
    try {
      checkState(state, where);
      const session = await registry.resumeSession(state);
      await session.close();
    } catch (error) {
      if (error instanceof CliError && error.exitCode === EXIT.provider) return EXIT.ok; // gone
      if (SessionNotFoundError.isInstance(error)) return EXIT.ok;
      throw error;
    }
    return EXIT.ok;
  }
  throw new CliError(`unknown command '${command}'`, EXIT.usage);

  async function snapshotCommand(): Promise<number> {
    const [sub, ref] = parsed.positionals;
    if (sub === undefined) {
      if (typeof v.session !== "string")
        throw new CliError("snapshot needs --session FILE (or list, restore ID, rm ID)", EXIT.usage);
      return withSession(async (session) => {
        const snap = await session.snapshot({ signal: abort.signal });
        if (snap) {
          try {
            recordSnapshot(io.env, snap, session.state());
          } catch (error) {
            io.stderr(
              `roder-runner: warning: the snapshot was taken but not recorded for 'snapshot list': ${(error as Error).message}\n`,
            );
          }
        }
        io.stdout(`${snap ? codecs.RunnerSnapshotRef.encodePretty(snap) : "null"}\n`);
        return EXIT.ok;
      });
    }
    if (sub === "list") {
      const all = listSnapshots(io.env);
      if (v.json) {
        io.stdout(
          `${JSON.stringify(
            all.map((e) => JSON.parse(codecs.RunnerSnapshotRef.encode(e.ref))),
            null,
            2,
          )}\n`,
        );
        return EXIT.ok;
      }
      const rows = all.map((e) => {
        const m = (e.ref.metadata ?? {}) as { size?: unknown; created_at?: unknown };
        return [
          e.ref.snapshot_id,
          e.ref.provider_id,
          typeof m.size === "number" ? humanBytes(m.size) : "-",
          typeof m.created_at === "string" ? m.created_at : "-",
          e.state.session_id || "-",
        ];
      });
      const head = ["SNAPSHOT", "PROVIDER", "SIZE", "CREATED", "FROM SESSION"];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows])
        io.stdout(
          `${r
            .map((c, i) => c.padEnd(w[i]!))
            .join("  ")
            .trimEnd()}\n`,
        );
      return EXIT.ok;
    }
    if (sub !== "restore" && sub !== "rm")
      throw new CliError(
        `unknown snapshot command '${sub}'`,
        EXIT.usage,
        "snapshot list | restore ID | rm ID",
      );
    if (!ref) throw new CliError(`snapshot ${sub} needs a snapshot id or ref file`, EXIT.usage);
    const entry = resolveSnapshot(ref);
    if (sub === "rm") {
      const provider = registry.get(entry.ref.provider_id);
      if (canDelete(provider)) await provider.deleteSnapshot(entry.ref);
      else if (entry.ref.provider_id === "http") {
        checkState(entry.state, ref);
        await deleteHttpSnapshot(entry.ref, io.env);
      } else
        throw new CliError(
          `provider '${entry.ref.provider_id}' cannot delete snapshots from here`,
          EXIT.provider,
          "delete it with the provider's own tools; 'snapshot rm' then only forgets it",
        );
      forgetSnapshot(io.env, entry.ref.snapshot_id);
      return EXIT.ok;
    }
    // restore: a new session from the snapshot, its state written like --keep (stdout by default).
    checkState(entry.state, ref);
    checkStateOut();
    for (const s of stopSignals) process.on(s, interrupt);
    try {
      const session = await registry.resumeSession(entry.state, { signal: abort.signal });
      try {
        if (abort.signal.aborted) throw new CliError("interrupted", EXIT.interrupted);
        writeState(session, "stdout");
      } catch (error) {
        await session.close().catch(() => {});
        throw error;
      }
      return EXIT.ok;
    } finally {
      for (const s of stopSignals) process.off(s, interrupt);
    }
  }

  /** A snapshot id of the index, or a file holding a `RunnerSnapshotRef` (from `snapshot`) or a state with one. */
  function resolveSnapshot(ref: string): IndexedSnapshot {
    const indexed = findSnapshot(io.env, ref);
    if (indexed) return indexed;
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(ref, "utf8")) as Record<string, unknown>;
    } catch (error) {
      throw new CliError(
        `'${ref}' is neither a snapshot in the index nor a readable JSON file${errnoOf(error) ? ` (${errnoOf(error)!.code})` : ""}`,
        EXIT.config,
        "'roder-runner snapshot list' shows the snapshots taken from this CLI",
      );
    }
    if (raw.snapshot && typeof raw.session_id === "string") {
      const state = codecs.RunnerSessionState.parse(raw);
      return { ref: state.snapshot!, state };
    }
    const snap = codecs.RunnerSnapshotRef.parse(raw);
    const known = findSnapshot(io.env, snap.snapshot_id);
    if (known) return known;
    if (snap.provider_id === "unix-local" && command === "snapshot" && parsed.positionals[0] === "restore")
      throw new CliError(
        `snapshot '${snap.snapshot_id}' is not in this CLI's index: a unix-local snapshot restores with the state of the session it was taken from`,
        EXIT.config,
        "restore it by id as the user who took it (same RODER_RUNNER_STATE_DIR), or pass a session state whose snapshot field is this ref",
      );
    return {
      ref: snap,
      state: {
        provider_id: snap.provider_id,
        session_id: "",
        destination_id: "restored",
        snapshot: snap,
        metadata: {},
      },
    };
  }
}

/** Path of an executable on PATH, or null. */
function onPath(program: string, env: Record<string, string | undefined>): string | null {
  for (const dir of (env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // not in this directory
    }
  }
  return null;
}

/**
 * `serve --isolation`: bubblewrap by default for the local provider where it is installed; `none` only when
 * the operator says so (with a warning); refused when asked for and missing. Other backends isolate on their
 * own (undefined: the flag does not apply).
 */
function serveIsolation(flag: string | undefined, providerId: string, io: Io): "bwrap" | "none" | undefined {
  if (flag !== undefined && flag !== "bwrap" && flag !== "none")
    throw new CliError(`--isolation takes bwrap or none, got '${flag}'`, EXIT.usage);
  if (providerId !== "unix-local") {
    if (flag !== undefined)
      throw new CliError(`--isolation applies to the local provider, not '${providerId}'`, EXIT.usage);
    return undefined;
  }
  const bwrap = onPath("bwrap", io.env) !== null;
  if (flag === "none") {
    io.stderr(
      "roder-runner: warning: --isolation none: clients' commands run as this user on this host, with its files, processes and network\n",
    );
    return "none";
  }
  if (!bwrap)
    throw new CliError(
      "bubblewrap (bwrap) is not installed, and serve isolates sessions with it by default",
      EXIT.config,
      "apt-get install bubblewrap, or pass --isolation none to serve without isolation",
    );
  return "bwrap";
}

/** The local provider's config keys (so vendor keys of other services are ignored by name, not by guess). */
async function localConfigKeys(): Promise<string[] | undefined> {
  try {
    const { LocalDestinationConfigSchema } = await import("@roder/runner-local");
    return Object.keys(LocalDestinationConfigSchema.shape);
  } catch {
    return undefined;
  }
}
