import { codecs, type RunnerExportProgress } from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT } from "../cli-base.js";
import type { SessionKit } from "../cli-session.js";
import { createProgress, transferSummary } from "../progress.js";

/** `roder-runner export`: an artifact to the destination's bucket, with the export's progress on a terminal. */
export async function exportCommand(a: CommandArgs, kit: SessionKit): Promise<number> {
  const { v, positionals, io } = a;
  const { abort, stateOut, withSession } = kit;
  const [path] = positionals;
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
