import { type SweepableProvider, sweepExpiredSessions } from "@roder/runner-contract";
import { CliError, EXIT, type Io } from "./cli.js";

/** `roder-runner sweep`: removes this owner's expired sandboxes on fly or e2b. */
export async function runSweep(v: Record<string, unknown>, io: Io): Promise<number> {
  const provider = v.provider as string | undefined;
  const owner = v.owner as string | undefined;
  if (!provider || !owner)
    throw new CliError(
      "sweep needs --provider and --owner",
      EXIT.usage,
      "roder-runner sweep --provider fly --app my-app --owner my-agent",
    );
  let sweeper: SweepableProvider;
  if (provider === "fly") {
    if (typeof v.app !== "string") throw new CliError("sweep --provider fly needs --app", EXIT.usage);
    const { createFlySweeper } = await import("@roder/runner-fly");
    sweeper = createFlySweeper({ app: v.app, env: io.env });
  } else if (provider === "e2b") {
    const mod = await import("@roder/runner-e2b").catch(() => {
      throw new CliError("the e2b provider is not installed", EXIT.config, "npm install @roder/runner-e2b");
    });
    sweeper = mod.createE2bSweeper({ env: io.env });
  } else {
    throw new CliError(`sweep supports fly and e2b, not '${provider}'`, EXIT.usage);
  }
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
