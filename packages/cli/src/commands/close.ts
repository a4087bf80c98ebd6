import { SessionNotFoundError } from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT } from "../cli-base.js";
import type { SessionKit } from "../cli-session.js";

/** `roder-runner close`: closes a kept session; idempotent. */
export async function closeCommand(a: CommandArgs, kit: SessionKit): Promise<number> {
  const { v, registry } = a;
  const { readState, checkState } = kit;
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
