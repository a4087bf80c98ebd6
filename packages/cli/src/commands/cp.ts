import { CliError, type CommandArgs, EXIT } from "../cli-base.js";
import type { SessionKit } from "../cli-session.js";
import { checkDestination, download, openSource, upload } from "../copy.js";
import { createProgress, transferSummary } from "../progress.js";

/** `roder-runner cp`: bytes between a host path and runner:PATH, streamed, with progress on a terminal. */
export async function cpCommand(a: CommandArgs, kit: SessionKit): Promise<number> {
  const { v, positionals, io } = a;
  const { abort, stateOut, withSession } = kit;
  const [src, dst] = positionals;
  if (!src || !dst)
    throw new CliError("cp needs SRC and DST", EXIT.usage, "roder-runner cp -d local ./file runner:dir/file");
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
