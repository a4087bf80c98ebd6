import { randomBytes } from "node:crypto";
import {
  type RunnerCallOptions,
  type RunnerSessionState,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { agentClient, agentDestination, agentState, agentToken, waitAgent } from "./fly-agent.js";
import { FlyAgentSession } from "./fly-agent-session.js";
import type { FlyApi, FlyMachine } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";
import type { FlyProviderContext } from "./fly-create.js";
import { destroyMachine, getMachine, machineDown, waitStarted } from "./fly-machine-ops.js";
import { CHECK_MARK } from "./fly-scripts.js";
import { FlySession } from "./fly-session.js";
import { decodeFlySessionMetadata, type FlyAgentMetadata } from "./fly-session-metadata.js";
import { deleteVolume } from "./fly-volumes.js";
import { FlyWorkspaceLostError } from "./fly-workspace-lost-error.js";

const RESET =
  "the machine was stopped and started again, which rebuilds a Fly Machine from its image (only volumes keep data)";

/**
 * Resumes a session from its state in any process: the machine is started again if it was stopped or
 * suspended; a workspace that did not survive (a machine rebuilt from its image) is a FlyWorkspaceLostError.
 */
export async function resumeFlySession(
  ctx: FlyProviderContext,
  state: RunnerSessionState,
  options?: RunnerCallOptions,
): Promise<FlySession | FlyAgentSession> {
  const meta = decodeFlySessionMetadata(state);
  const { config } = meta;
  // Only secret ids are taken from the state; their values come from the resolver or the environment.
  await ctx.prime(config);
  const volumeId = meta.volume_id;
  const a = ctx.api();
  const m = await getMachine(a, config, meta.machine_id, options?.signal);
  if (m.state === "destroyed" || m.state === "destroying" || m.state === "failed")
    throw new SessionNotFoundError({
      providerId: "fly",
      sessionId: m.id,
      message: `machine ${m.id} is ${m.state}`,
    });
  if (m.state !== "started") {
    await a.call("POST", `/apps/${config.app}/machines/${m.id}/start`, {
      idempotent: true,
      operation: "start machine",
      signal: options?.signal,
      machineId: m.id,
    });
    await waitStarted(a, config, m.id, Date.now() + config.create_timeout_ms, options?.signal);
  }
  const lost = (detail: string) => workspaceLost(a, config, m, volumeId, detail);
  if (meta.mode === "agent") return resumeAgent(ctx, state, meta, { a, m, lost }, options);
  const { marker } = meta;
  const session = new FlySession(a, {
    machineId: m.id,
    destinationId: state.destination_id,
    config,
    env: ctx.env() as Record<string, string | undefined>,
    mounted: meta.mounted,
    ...(marker ? { marker } : {}),
    tuning: ctx.tuning,
    ...(volumeId ? { volumeId } : {}),
  });
  if (marker) {
    const r = await session.exec(
      ["/bin/sh", "-c", CHECK_MARK, "roder-check", config.workspace_root, marker],
      {
        timeoutS: 30,
        signal: options?.signal,
        operation: "check workspace",
        idempotent: true,
      },
    );
    if ((r.exit_code ?? 0) !== 0) throw await lost(RESET);
  }
  return session;
}

/** The session's files and processes are gone: it cannot be handed out. The empty machine goes too. */
async function workspaceLost(
  a: FlyApi,
  config: FlyDestinationConfig,
  m: FlyMachine,
  volumeId: string | undefined,
  detail: string,
): Promise<FlyWorkspaceLostError> {
  await destroyMachine(a, config.app, m.id).catch(() => {});
  if (volumeId) await deleteVolume(a, config.app, volumeId, m.id).catch(() => {});
  return new FlyWorkspaceLostError({
    machineId: m.id,
    message: `fly: the workspace of machine ${m.id} was lost: ${detail}. The machine has been destroyed; create a new session.`,
  });
}

/**
 * Agent mode: the agent's session again; when the agent does not know it (the machine was reset, its agent
 * started afresh) and the workspace is on a volume, a new agent session takes its files over.
 */
async function resumeAgent(
  ctx: FlyProviderContext,
  state: RunnerSessionState,
  meta: FlyAgentMetadata,
  { a, m, lost }: { a: FlyApi; m: FlyMachine; lost: (detail: string) => Promise<FlyWorkspaceLostError> },
  options?: RunnerCallOptions,
): Promise<FlyAgentSession> {
  const { config } = meta;
  const fetch = ctx.settings.fetch ?? globalThis.fetch;
  const agent = agentToken(await ctx.agentSecret(), config.app, meta.agent_nonce);
  await waitAgent({
    config,
    machineId: m.id,
    token: agent,
    fetch,
    deadline: Date.now() + config.create_timeout_ms,
    signal: options?.signal,
    machineDown: () => machineDown(a, config, m.id),
  });
  const client = agentClient({ config, machineId: m.id, token: agent, fetch, onRetry: ctx.settings.onRetry });
  const info = {
    machineId: m.id,
    destinationId: state.destination_id,
    config,
    env: ctx.env() as Record<string, string | undefined>,
    nonce: meta.agent_nonce,
    volumeId: meta.volume_id,
    mounted: meta.mounted,
  };
  try {
    const inner = await client.resumeSession(
      agentState(config, meta.agent_session_id, state.destination_id),
      options,
    );
    return new FlyAgentSession(a, inner, info);
  } catch (error) {
    if (!SessionNotFoundError.isInstance(error)) throw error;
  }
  // The agent does not know the session: the machine was reset (its agent started afresh).
  if (!meta.volume_id) throw await lost(RESET);
  // The workspace is on the volume: a new agent session takes its files over (a rename on the volume).
  const inner = await client.createSession(agentDestination(config, state.destination_id), options);
  const session = new FlyAgentSession(a, inner, { ...info, mounted: [] });
  const moved = await session.runCommand(
    {
      command_id: `adopt-${randomBytes(4).toString("hex")}`,
      program: "/bin/sh",
      args: [
        "-c",
        '[ -d "$1" ] || exit 3; find "$1" -mindepth 1 -maxdepth 1 -exec mv -t "$2" -- {} + && rmdir -- "$1" && rm -f -- "$1.session.json"',
        "roder-adopt",
        meta.workspace_root,
        session.root,
      ],
    },
    options,
  );
  if (moved.exit_code !== 0) {
    await inner.close().catch(() => {});
    throw await lost(`${RESET}, and the old workspace is not on its volume (${moved.stderr.trim()})`);
  }
  return session;
}
