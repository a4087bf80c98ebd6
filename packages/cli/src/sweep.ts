import { sweepExpiredSessions } from "@roder/runner-contract";
import { CliError, EXIT, type Io } from "./cli-base.js";
import { loadSweeper } from "./providers.js";

const PACKAGES: Record<string, string> = {
  fly: "@roder/runner-fly",
  e2b: "@roder/runner-e2b",
  local: "@roder/runner-local",
  "unix-local": "@roder/runner-local",
  http: "@roder/runner-http",
};

/** `roder-runner sweep`: removes this owner's expired sandboxes on fly, e2b, local or http. */
export async function runSweep(v: Record<string, unknown>, io: Io): Promise<number> {
  const provider = v.provider as string | undefined;
  const owner = v.owner as string | undefined;
  if (!provider || !owner)
    throw new CliError(
      "sweep needs --provider and --owner",
      EXIT.usage,
      "roder-runner sweep --provider fly --app my-app --owner my-agent",
    );
  const pkg = PACKAGES[provider];
  if (!pkg) throw new CliError(`sweep supports fly, e2b, local and http, not '${provider}'`, EXIT.usage);
  if (provider === "fly" && typeof v.app !== "string")
    throw new CliError("sweep --provider fly needs --app", EXIT.usage);
  if (provider === "http" && typeof v.url !== "string" && !io.env.RODER_RUNNER_HTTP_URL)
    throw new CliError(
      "sweep --provider http needs --url (or RODER_RUNNER_HTTP_URL)",
      EXIT.usage,
      "roder-runner sweep --provider http --url https://runners.example.com --owner my-agent",
    );
  const sweeper = await loadSweeper(
    provider,
    {
      ...(typeof v.app === "string" ? { app: v.app } : {}),
      ...(typeof v.root === "string" ? { root: v.root } : {}),
      ...(typeof v.url === "string" ? { url: v.url } : {}),
    },
    io.env,
  );
  if (!sweeper)
    throw new CliError(`the ${provider} provider is not installed`, EXIT.config, `npm install ${pkg}`);
  const result = await sweepExpiredSessions(sweeper, { owner, dryRun: Boolean(v["dry-run"]) });
  if (v.json) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const s of result.found) {
      const due = s.expires_at !== null && Date.parse(s.expires_at) <= Date.now();
      io.stdout(
        `${s.session_id}  ${s.state}  expires ${s.expires_at ?? "never"}  ${result.removed.includes(s.session_id) ? "removed" : due ? "expired (dry run)" : "kept"}\n`,
      );
    }
    io.stdout(
      `${result.found.length} found, ${result.removed.length} removed, ${result.errors.length} errors\n`,
    );
  }
  return result.errors.length ? EXIT.provider : EXIT.ok;
}
