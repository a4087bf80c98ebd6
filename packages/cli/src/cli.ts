import { parseArgs } from "node:util";
import { createRunnerRegistry } from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT, type Io, VERSION } from "./cli-base.js";
import { mapError } from "./cli-errors.js";
import { HELP } from "./cli-help.js";
import { sessionKit } from "./cli-session.js";
import { loadProviders } from "./providers.js";

export { CliError, EXIT, type Io, VERSION } from "./cli-base.js";
export { loadDestination } from "./destination.js";

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
  const a: CommandArgs = { command, v, positionals: parsed.positionals, tail, io, registry };
  // Each command in its own module, loaded when run.
  if (command === "providers") return (await import("./commands/providers.js")).providersCommand(a);
  if (command === "sweep") return (await import("./sweep.js")).runSweep(v, io);
  if (command === "serve") return (await import("./commands/serve.js")).serveCommand(a);
  // Commands that need a session.
  const kit = sessionKit(a);
  if (command === "exec") return (await import("./commands/exec.js")).execCommand(a, kit);
  if (command === "cp") return (await import("./commands/cp.js")).cpCommand(a, kit);
  if (command === "export") return (await import("./commands/export.js")).exportCommand(a, kit);
  if (command === "snapshot") return (await import("./commands/snapshot.js")).snapshotCommand(a, kit);
  if (command === "close") return (await import("./commands/close.js")).closeCommand(a, kit);
  throw new CliError(`unknown command '${command}'`, EXIT.usage);
}
