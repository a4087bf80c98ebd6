import {
  decodeSessionMetadata,
  type RunnerMount,
  RunnerMountSchema,
  type RunnerSessionState,
} from "@roder/runner-contract";
import type { SandboxMountRef } from "@roder/runner-storage";
import { z } from "zod";
import { type E2bDestinationConfig, E2bDestinationConfigSchema } from "./e2b-config.js";

/**
 * `state().metadata` of an E2B session, versioned: what `resumeSession` needs in another process, no secret (mounts
 * carry secret ids only). Version 1 is the shape written before the field existed: a state without it reads as 1.
 */
export const E2B_SESSION_METADATA_VERSION = 1;

export const E2bSessionMetadataSchema = z.object({
  version: z.literal(E2B_SESSION_METADATA_VERSION).default(E2B_SESSION_METADATA_VERSION),
  sandbox_id: z.string(),
  workspace_root: z.string(),
  config: E2bDestinationConfigSchema,
  /** The manifest's bucket mounts (secret refs only): made again when a snapshot is restored. */
  mounts: z.array(RunnerMountSchema).default([]),
  /** Where they are mounted in the sandbox (storage's `SandboxMountRef`): unmounted, drained, at close. */
  mounted: z.array(z.object({ path: z.string(), rc: z.string().nullable() })).default([]),
});
export type E2bSessionMetadata = z.infer<typeof E2bSessionMetadataSchema>;

/** The one writer of an E2B session's `state().metadata` (key order as the states written before). */
export function e2bSessionMetadata(m: {
  sandboxId: string;
  config: E2bDestinationConfig;
  mounts: RunnerMount[];
  mounted: SandboxMountRef[];
}): Record<string, unknown> {
  return {
    version: E2B_SESSION_METADATA_VERSION,
    sandbox_id: m.sandboxId,
    workspace_root: m.config.workspace_root,
    config: m.config,
    mounts: m.mounts,
    mounted: m.mounted,
  };
}

/** An E2B session state's metadata, decoded (never cast): a state that is not one is a typed `invalid_request`. */
export function decodeE2bSessionMetadata(state: RunnerSessionState): E2bSessionMetadata {
  return decodeSessionMetadata(E2bSessionMetadataSchema, state, "e2b", "not an e2b session state");
}
