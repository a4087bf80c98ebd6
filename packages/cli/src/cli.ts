import { accessSync, constants, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { parseArgs } from "node:util";
import {
  codecs,
  commandOutcome,
  createRunnerRegistry,
  type RemoteRunnerSession,
  type RunnerCapabilities,
  type RunnerCommandResult,
  type RunnerDestination,
  RunnerError,
} from "@roder/runner-contract";
import { parse as parseToml } from "smol-toml";
import { loadProviders } from "./providers.js";
import {
  checkHttpState,
  checkLocalState,
  StateGoneError,
  StateRefusedError,
  writePrivateFile,
} from "./state-check.js";

export const VERSION = "0.1.0";

/** Documented exit codes. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  provider: 4,
  timeout: 124,
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
  snapshot                               snapshot a kept session
  close                                  close a kept session
  serve [--provider local]               serve the HTTP runner protocol in front of a provider
  sweep --provider P --owner O          remove expired sessions a crashed caller left (fly, e2b, local, http)

Run 'roder-runner <command> --help' for a command's options.
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 provider/API error, 124 timeout, 137 killed;
exec exits with the command's own code.
Secrets come from the environment only (RODER_SECRET_<ID>_<FIELD>, E2B_API_KEY, FLY_API_TOKEN, ...).`,
  providers:
    "Usage: roder-runner providers [--json]\n  Lists installed providers with their capabilities and setup hints (names of missing env variables, never values).",
  exec: `Usage: roder-runner exec (--destination FILE|ID | --session STATE) [options] -- PROGRAM [ARGS...]
  --destination, -d FILE|ID   destination JSON/TOML file, or a built-in id: local
  --session, -s FILE|-        resume the session stored in FILE (from --keep); - reads stdin
  --keep                      leave the session up and write its RunnerSessionState JSON
  --state-out FILE|-          where --keep writes the state (file, mode 0600; - = stdout; default stderr)
  --timeout MS                kill the command after MS milliseconds (exit 124)
  --cwd PATH                  working directory (runner path)
  --env K=V                   environment pair (repeatable)`,
  cp: "Usage: roder-runner cp (--destination D | --session S) [--keep] SRC DST\n  One of SRC/DST is runner:PATH, the other a host path; - is stdin (as SRC) or stdout (as DST).",
  export:
    "Usage: roder-runner export (--destination D | --session S) PATH [--recursive]\n  Prints the RunnerArtifactExportResult as JSON; shows progress on a terminal.",
  snapshot: "Usage: roder-runner snapshot --session S\n  Prints the RunnerSnapshotRef as JSON.",
  close: "Usage: roder-runner close --session S",
  sweep:
    "Usage: roder-runner sweep --provider fly|e2b|local|http --owner OWNER [--app APP] [--root DIR] [--url URL] [--dry-run] [--json]\n  Lists the sessions tagged with owner OWNER and removes those past their expiry.\n  fly: in app APP (needs --app); e2b: E2B_API_KEY; local: workspaces under DIR (default the provider's root);\n  http: the server at URL (or RODER_RUNNER_HTTP_URL), token RODER_RUNNER_HTTP_TOKEN.",
  serve: `Usage: roder-runner serve [--provider local] [--port N] [--host 127.0.0.1] [options]
  Token from RODER_RUNNER_SERVER_TOKEN. Stops on SIGINT/SIGTERM. What weakens isolation is this operator's
  choice, never a client's (clients asking for it get 403 config_refused):
  --isolation bwrap|none      every session under bubblewrap (default where bwrap is installed, local
                              provider); 'none' runs commands as this user on this host (a warning is printed)
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

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
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
    const hint =
      error.code === "missing_secret"
        ? "set the variables named above"
        : error.code === "unknown_provider"
          ? "install the provider package, e.g. npm install @roder/runner-e2b"
          : undefined;
    return new CliError(error.message, config ? EXIT.config : EXIT.provider, hint);
  }
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
    const provider = registry.get(providerId);
    const isolation = serveIsolation(v.isolation as string | undefined, providerId, io);
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
    io.stdout(`serving ${provider.id} on ${server.url}${isolation ? ` (isolation ${isolation})` : ""}\n`);
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
  const openSession = async (): Promise<{ session: RemoteRunnerSession; resumed: boolean }> => {
    if (typeof v.session === "string") {
      let text: string;
      try {
        text = readFileSync(v.session === "-" ? 0 : v.session, "utf8");
      } catch {
        throw new CliError(
          `cannot read session state file ${v.session}`,
          EXIT.config,
          "write one with 'roder-runner exec --keep --state-out FILE'",
        );
      }
      const state = codecs.RunnerSessionState.decode(text.trim());
      // A state file is data, not authority: what it names must be the runner's own before anything runs,
      // and above all before `close` deletes or unmounts anything.
      try {
        if (state.provider_id === "unix-local") checkLocalState(state);
        if (state.provider_id === "http") checkHttpState(state, io.env.RODER_RUNNER_HTTP_URL);
      } catch (error) {
        if (error instanceof StateGoneError) throw new CliError(error.message, EXIT.provider);
        if (error instanceof StateRefusedError)
          throw new CliError(
            `refusing the session state in ${v.session === "-" ? "stdin" : v.session}: ${error.message}; nothing was touched`,
            EXIT.config,
            "use a state file written by 'roder-runner exec --keep --state-out FILE' on this machine",
          );
        throw error;
      }
      return { session: await registry.resumeSession(state), resumed: true };
    }
    if (typeof v.destination !== "string")
      throw new CliError(
        `${command} needs --destination or --session`,
        EXIT.usage,
        `run 'roder-runner ${command} --help'`,
      );
    const destination = loadDestination(v.destination);
    try {
      return { session: await registry.createSession(destination), resumed: false };
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
  const finish = async (session: RemoteRunnerSession, resumed: boolean) => {
    if (v.keep) {
      const state = `${codecs.RunnerSessionState.encode(session.state())}\n`;
      if (v["state-out"] === "-") io.stdout(state);
      else if (typeof v["state-out"] === "string") {
        try {
          writePrivateFile(v["state-out"], state);
        } catch (error) {
          if (error instanceof StateRefusedError)
            throw new CliError(`--state-out: ${error.message}`, EXIT.config, "pass a path of your own");
          throw error;
        }
      } else io.stderr(`session state: ${state}`);
    } else if (!resumed || command === "close") await session.close();
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
    const { session, resumed } = await openSession();
    try {
      const request = {
        command_id: `cli-${Date.now()}`,
        program: tail[0]!,
        args: tail.slice(1),
        cwd: (v.cwd as string | undefined) ?? null,
        env,
        ...(timeout ? { timeout_ms: timeout } : {}),
      };
      let result: RunnerCommandResult;
      if (session.startCommand) {
        const handle = await session.startCommand(request);
        // Ctrl-C / SIGTERM kill the remote command; its result then reports the kill (exit 137).
        const onSignal = () => void handle.kill();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        for await (const chunk of handle.output)
          (chunk.stream === "stdout" ? io.stdout : io.stderr)(chunk.data);
        result = await handle.wait();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      } else {
        result = await session.runCommand(request);
        io.stdout(result.stdout);
        io.stderr(result.stderr);
      }
      const outcome = commandOutcome(result);
      if (outcome.timedOut) {
        io.stderr(`roder-runner: command timed out after ${timeout} ms\n`);
        return EXIT.timeout;
      }
      return result.exit_code ?? EXIT.killed;
    } finally {
      await finish(session, resumed);
    }
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
    const { session, resumed } = await openSession();
    try {
      if (remote(dst)) {
        await session.writeFile({
          path: dst.slice(7),
          contents: new Uint8Array(readFileSync(src === "-" ? 0 : src)),
        });
      } else {
        const r = await session.readFile({ path: src.slice(7) });
        if (dst === "-") io.stdout(r.contents);
        else writeFileSync(dst, r.contents);
      }
      return EXIT.ok;
    } finally {
      await finish(session, resumed);
    }
  }

  if (command === "export") {
    const [path] = parsed.positionals;
    if (!path) throw new CliError("export needs a PATH", EXIT.usage);
    const { session, resumed } = await openSession();
    try {
      // The contract's export call reports no progress mid-transfer, so a terminal sees the elapsed time while
      // it runs and the bytes moved and the rate when it ends; piped output gets only the JSON.
      const started = Date.now();
      const ticker = io.isTTY
        ? setInterval(
            () => io.stderr(`\r\x1b[Kexporting ${path}… ${((Date.now() - started) / 1000).toFixed(1)} s`),
            200,
          )
        : undefined;
      const result = await session.exportArtifact({ path, recursive: Boolean(v.recursive) }).finally(() => {
        clearInterval(ticker);
        if (io.isTTY) io.stderr("\r\x1b[K");
      });
      const meta = result.metadata as { size?: number } | null;
      if (io.isTTY && typeof meta?.size === "number") {
        const s = Math.max((Date.now() - started) / 1000, 0.001);
        io.stderr(
          `exported ${path}: ${humanBytes(meta.size)} (${meta.size} bytes) in ${s.toFixed(1)} s, ${humanBytes(meta.size / s)}/s\n`,
        );
      }
      io.stdout(`${codecs.RunnerArtifactExportResult.encodePretty(result)}\n`);
      return EXIT.ok;
    } finally {
      await finish(session, resumed);
    }
  }

  if (command === "snapshot" || command === "close") {
    if (typeof v.session !== "string") throw new CliError(`${command} needs --session FILE`, EXIT.usage);
    const { session } = await openSession();
    if (command === "snapshot") {
      const snap = await session.snapshot();
      io.stdout(`${snap ? codecs.RunnerSnapshotRef.encodePretty(snap) : "null"}\n`);
      return EXIT.ok;
    }
    await session.close();
    return EXIT.ok;
  }
  throw new CliError(`unknown command '${command}'`, EXIT.usage);
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
