import type { RemoteRunnerSession, RunnerCallOptions } from "@roder/runner-contract";
import type { HttpRunnerSession } from "@roder/runner-http";
import { z } from "zod";
import type { FlyApi } from "./fly-api.js";
import { FlyMachineSession, type FlySessionInfo } from "./fly-machine-session.js";

/** The agent session's workspace, from its (HTTP runner) state's metadata: decoded, never cast. */
const AgentMetadataSchema = z.object({ workspace_root: z.string().nullish() }).nullish();
function agentWorkspaceRoot(metadata: unknown): string {
  const r = AgentMetadataSchema.safeParse(metadata);
  return (r.success ? r.data?.workspace_root : undefined) ?? "";
}

/**
 * A Fly session in agent mode: the machine runs `roder-runner serve`, and every command, file and stream goes
 * to it over the HTTP runner protocol (packages/http's client) through the app's public address, pinned to the
 * machine with `fly-force-instance-id`. The Machines API is used only to create, suspend and destroy. Port
 * URLs, artifact export (through the agent), suspend and close are FlyMachineSession's, as in exec mode.
 */
export class FlyAgentSession extends FlyMachineSession implements RemoteRunnerSession {
  declare readonly info: FlySessionInfo & {
    /** Derives the agent's token with the provider's secret (the state holds only this). */
    nonce: string;
  };

  constructor(
    api: FlyApi,
    private readonly agent: HttpRunnerSession,
    info: FlyAgentSession["info"],
  ) {
    super(api, info);
  }

  // The agent's own methods, each behind this session's guard (the agent knows nothing of a suspended machine).
  runCommand: HttpRunnerSession["runCommand"] = this.life.guard((i, o) => this.agent.runCommand(i, o));
  startCommand: HttpRunnerSession["startCommand"] = this.life.guard((i, o) => this.agent.startCommand(i, o));
  attachCommand: HttpRunnerSession["attachCommand"] = this.life.guard((id, o) =>
    this.agent.attachCommand(id, o),
  );
  cancelCommand: HttpRunnerSession["cancelCommand"] = this.life.guard((id, o) =>
    this.agent.cancelCommand(id, o),
  );
  readFile: HttpRunnerSession["readFile"] = this.life.guard((r, o) => this.agent.readFile(r, o));
  writeFile: HttpRunnerSession["writeFile"] = this.life.guard((i, o) => this.agent.writeFile(i, o));
  /** Streamed through the agent's file routes (byte ranges; bounded memory both ways). */
  readFileStream: HttpRunnerSession["readFileStream"] = this.life.guard((r, o) =>
    this.agent.readFileStream(r, o),
  );
  writeFileStream: HttpRunnerSession["writeFileStream"] = this.life.guard((r, body, o) =>
    this.agent.writeFileStream(r, body, o),
  );

  /** The agent session's workspace (under `workspace_root`, on the volume when there is one). */
  get root(): string {
    return agentWorkspaceRoot(this.agent.state().metadata);
  }

  protected stateFacts(): { agent: { sessionId: string; nonce: string } } {
    return { agent: { sessionId: this.agent.state().session_id, nonce: this.info.nonce } };
  }

  /** Closes the agent session (its processes, mounts) before the machine goes. */
  protected override async endInside(options?: RunnerCallOptions): Promise<void> {
    await this.agent.close(options).catch(() => {});
  }
}
