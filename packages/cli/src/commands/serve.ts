import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT, type Io } from "../cli-base.js";

/** `roder-runner serve`: the HTTP runner protocol in front of a provider, isolation the operator's. */
export async function serveCommand(a: CommandArgs): Promise<number> {
  const { v, io, registry } = a;
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
