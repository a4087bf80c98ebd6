import { randomUUID } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import { basename } from "node:path";
import {
  isWithin,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { ownCgroup } from "./local-cgroup.js";
import { type RegistryEntry, readRegistryEntry, trustedRegistryDir } from "./local-registry.js";
import type { SandboxRecord } from "./local-sandbox.js";
import { LocalSession } from "./local-session.js";
import { LOCAL_PROVIDER_ID, type LocalSessionInfo } from "./local-session-info.js";
import { decodeSessionMetadata, type LocalSessionMetadata } from "./local-session-metadata.js";
import { type LocalProviderContext, newWorkspace, openSession } from "./local-session-setup.js";
import { extractSnapshot, snapshotToRestore } from "./local-snapshots.js";

// resumeSession: a state is the caller's and hostile until checked. Without a snapshot, the runner's registry
// (not the state) says which workspace, mounts and sandbox the session has; with one, a new session is made
// from the snapshot's checked archive.

export async function resumeLocalSession(
  ctx: LocalProviderContext,
  state: RunnerSessionState,
  signal: AbortSignal | undefined,
): Promise<LocalSession> {
  const meta = decodeSessionMetadata(state.metadata, state.provider_id);
  if (state.snapshot) return fromSnapshot(ctx, state, state.snapshot, meta, signal);
  return fromRegistry(ctx, state, meta);
}

/** A new session over a new workspace, filled from the snapshot (made as the state's session was). */
async function fromSnapshot(
  ctx: LocalProviderContext,
  state: RunnerSessionState,
  snapshot: RunnerSnapshotRef,
  meta: LocalSessionMetadata,
  signal: AbortSignal | undefined,
): Promise<LocalSession> {
  await ctx.primeSecrets(meta.config, meta.mounts);
  const archive = await snapshotToRestore(snapshot);
  const sessionId = `local-${randomUUID()}`;
  const workspaceRoot = await newWorkspace(ctx, meta.config, sessionId);
  const oldHost = meta.host_root ?? meta.workspace_root;
  const rel = (p: string) => p.slice(oldHost.length);
  const info: LocalSessionInfo = {
    sessionId,
    destinationId: state.destination_id,
    workspaceRoot,
    config: meta.config,
    binds: [],
    readOnlyEntries: meta.read_only_entries.map((p) => workspaceRoot + rel(p)),
    mounts: meta.mounts,
    snapshotDir: meta.snapshot_dir,
    registryDir: ctx.registryDir,
    sandbox: null,
  };
  return openSession(ctx, info, () => extractSnapshot(archive, workspaceRoot), { signal });
}

/** The live session the registry records under the state's id, as the registry records it. */
async function fromRegistry(
  ctx: LocalProviderContext,
  state: RunnerSessionState,
  meta: LocalSessionMetadata,
): Promise<LocalSession> {
  const hostRoot = meta.host_root ?? meta.workspace_root;
  // Only this provider's own registry counts (never a directory the state names).
  const entry = await trustedRegistryEntry(ctx.registryDir, state.session_id);
  // The registry's own record must also be coherent: the workspace named after the session, every bind and
  // read-only entry inside it.
  const coherent =
    entry !== null &&
    basename(entry.workspace_root) === state.session_id &&
    [...entry.binds, ...entry.read_only_entries].every((p) => isWithin(p, entry.workspace_root));
  if (!entry || !coherent || entry.workspace_root !== hostRoot || !existsSync(hostRoot)) {
    throw new SessionNotFoundError({
      providerId: LOCAL_PROVIDER_ID,
      sessionId: state.session_id,
      message: `session '${state.session_id}' is closed or unknown on this machine`,
    });
  }
  const sandbox = checkedSandbox(entry.sandbox, state.session_id);
  // The registry's refs, not the state's: only what the session was made with is asked for.
  await ctx.primeSecrets(entry.config ?? meta.config, entry.mounts ?? meta.mounts);
  const info: LocalSessionInfo = {
    sessionId: state.session_id,
    destinationId: state.destination_id,
    workspaceRoot: entry.workspace_root,
    // What the session was made with (isolation, network, retention) is the registry's, not the state's.
    config: entry.config ?? meta.config,
    binds: entry.binds,
    readOnlyEntries: entry.read_only_entries,
    mounts: entry.mounts ?? meta.mounts,
    snapshotDir: entry.snapshot_dir ?? meta.snapshot_dir,
    registryDir: ctx.registryDir,
    sandbox,
  };
  return new LocalSession(info, ctx.runtime(), await fs.realpath(entry.workspace_root));
}

/** The registry's entry of a session: the runner's own record, trusted over what a state says. */
async function trustedRegistryEntry(dir: string, sessionId: string): Promise<RegistryEntry | null> {
  if (!/^local-[0-9a-f-]{36}$/.test(sessionId)) return null;
  try {
    if (!(await trustedRegistryDir(dir))) return null;
  } catch {
    return null;
  }
  return readRegistryEntry(dir, sessionId);
}

/** A cgroup named in the registry is used only if it is the session's own. */
function checkedSandbox(record: SandboxRecord | null | undefined, sessionId: string): SandboxRecord | null {
  if (!record) return null;
  if (record.kind === "cgroup" && !ownCgroup(record.path, sessionId)) return { kind: "marker" };
  return record;
}
