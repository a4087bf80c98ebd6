import { decodeSessionMetadata, type RunnerSessionState } from "@roder/runner-contract";
import type { SandboxMountRef } from "@roder/runner-storage";
import { z } from "zod";
import { type FlyDestinationConfig, FlyDestinationConfigSchema } from "./fly-config.js";

/**
 * `state().metadata` of both Fly session kinds, versioned: what `resumeSession` needs in another process, no
 * secret. Version 1 is the shape written before the field existed, so a state without `version` reads as 1.
 */
export const FLY_SESSION_METADATA_VERSION = 1;

/** A bucket mount made in the machine (storage's `SandboxMountRef`): unmounted, write-back drained, at close. */
const MountedSchema = z.object({ path: z.string(), rc: z.string().nullable() });

const common = {
  version: z.literal(FLY_SESSION_METADATA_VERSION).default(FLY_SESSION_METADATA_VERSION),
  machine_id: z.string(),
  app: z.string(),
  /** The session's workspace in the machine (agent mode: the agent session's, under `config.workspace_root`). */
  workspace_root: z.string(),
  config: FlyDestinationConfigSchema,
  mounted: z.array(MountedSchema).default([]),
  /** The workspace's Fly volume (created with the machine, deleted at close). */
  volume_id: z.string().optional(),
};

/** Exec mode: every command and file operation is an exec; no `mode` key. */
const FlyExecMetadataSchema = z.object({
  ...common,
  mode: z.undefined().optional(),
  /** Written in the workspace at create: resume checks it is still there (see FlyWorkspaceLostError). */
  marker: z.string().optional(),
});

/** Agent mode: the machine runs `roder-runner serve`; its token is derived from the nonce (never stored). */
const FlyAgentMetadataSchema = z.object({
  ...common,
  mode: z.literal("agent"),
  agent_session_id: z.string(),
  agent_nonce: z.string(),
});

export const FlySessionMetadataSchema = z.union([FlyAgentMetadataSchema, FlyExecMetadataSchema]);
export type FlySessionMetadata = z.infer<typeof FlySessionMetadataSchema>;
export type FlyAgentMetadata = z.infer<typeof FlyAgentMetadataSchema>;

/** The one writer of `state().metadata` for both session kinds (key order as the states written before). */
export function flySessionMetadata(m: {
  machineId: string;
  config: FlyDestinationConfig;
  workspaceRoot: string;
  mounted: SandboxMountRef[];
  agent?: { sessionId: string; nonce: string };
  marker?: string | undefined;
  volumeId?: string | undefined;
}): Record<string, unknown> {
  return {
    version: FLY_SESSION_METADATA_VERSION,
    ...(m.agent ? { mode: "agent" } : {}),
    machine_id: m.machineId,
    app: m.config.app,
    workspace_root: m.workspaceRoot,
    config: m.config,
    ...(m.agent ? { agent_session_id: m.agent.sessionId, agent_nonce: m.agent.nonce } : {}),
    mounted: m.mounted,
    ...(m.marker ? { marker: m.marker } : {}),
    ...(m.volumeId ? { volume_id: m.volumeId } : {}),
  };
}

/** A Fly session state's metadata, decoded (never cast): a state that is not one is a typed `invalid_request`. */
export function decodeFlySessionMetadata(state: RunnerSessionState): FlySessionMetadata {
  const meta = state.metadata;
  const agent = typeof meta === "object" && meta !== null && "mode" in meta && meta.mode === "agent";
  if (agent)
    return decodeSessionMetadata(FlyAgentMetadataSchema, state, "fly", "not a fly agent session state");
  return decodeSessionMetadata(FlyExecMetadataSchema, state, "fly");
}
