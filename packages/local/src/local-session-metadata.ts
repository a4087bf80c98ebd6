import { decodeSessionMetadata as decodeState, RunnerMountSchema } from "@roder/runner-contract";
import { z } from "zod";
import { LocalDestinationConfigSchema } from "./local-config.js";
import { LOCAL_PROVIDER_ID, type LocalSessionInfo, runnerRootOf } from "./local-session-info.js";

/** The version of `state().metadata` this runner writes (and the only one it reads). */
export const LOCAL_SESSION_METADATA_VERSION = 1;

/**
 * `state().metadata` of a unix-local session: what `resumeSession` needs to find the session again (or to rebuild
 * it from a snapshot). Versioned: a state without `version` was written before it had one and is version 1 (the
 * same fields). A state is the caller's: everything here is checked against the runner's registry on resume.
 */
export const LocalSessionMetadataSchema = z.object({
  version: z
    .literal(LOCAL_SESSION_METADATA_VERSION, {
      error: `this runner reads version ${LOCAL_SESSION_METADATA_VERSION} of the unix-local session state`,
    })
    .default(LOCAL_SESSION_METADATA_VERSION),
  /** The workspace as commands see it (`workspace_path` under bwrap). */
  workspace_root: z.string().startsWith("/"),
  /** The workspace on the host (absent in states written before it was kept: then `workspace_root`). */
  host_root: z.string().startsWith("/").optional(),
  config: LocalDestinationConfigSchema,
  binds: z.array(z.string()).default(() => []),
  read_only_entries: z.array(z.string()).default(() => []),
  mounts: z.array(RunnerMountSchema).default(() => []),
  snapshot_dir: z.string(),
  registry_dir: z.string(),
  /** How the session's processes are held: its sandbox, its cgroup, or a marker in their environment. */
  process_tracking: z.enum(["sandbox", "cgroup", "marker"]).optional(),
  /** What the file API addresses (`provider.limits(destination).file_scope`); informative, never trusted. */
  file_scope: z.enum(["sandbox", "workspace"]).optional(),
  /** How many times the session's sandbox was started again after it had ended. */
  sandbox_restarts: z.number().int().nonnegative().optional(),
});
export type LocalSessionMetadata = z.infer<typeof LocalSessionMetadataSchema>;

/** The metadata of a session's state. */
export function encodeSessionMetadata(
  info: LocalSessionInfo,
  facts: { sandboxScope: boolean; restarts: number },
): LocalSessionMetadata {
  return {
    version: LOCAL_SESSION_METADATA_VERSION,
    workspace_root: runnerRootOf(info),
    host_root: info.workspaceRoot,
    config: info.config,
    binds: info.binds,
    read_only_entries: info.readOnlyEntries,
    mounts: info.mounts,
    snapshot_dir: info.snapshotDir,
    registry_dir: info.registryDir,
    process_tracking: info.sandbox?.kind === "bwrap" ? "sandbox" : (info.sandbox?.kind ?? "marker"),
    // What the file API addresses (`provider.limits(destination).file_scope`).
    file_scope: facts.sandboxScope ? "sandbox" : "workspace",
    ...(facts.restarts > 0 ? { sandbox_restarts: facts.restarts } : {}),
  };
}

/**
 * A state's metadata (of a state of `providerId`), decoded: a typed `invalid_request` when it is not a unix-local
 * session state (see the contract's `decodeSessionMetadata`).
 */
export function decodeSessionMetadata(
  metadata: unknown,
  providerId = LOCAL_PROVIDER_ID,
): LocalSessionMetadata {
  return decodeState(LocalSessionMetadataSchema, { provider_id: providerId, metadata }, LOCAL_PROVIDER_ID);
}
