import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import {
  checkProviderId,
  confinePath,
  RunnerError,
  type RunnerSnapshotRef,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { z } from "zod";
import { ensurePrivateDir } from "./local-private-dir.js";
import { LOCAL_PROVIDER_ID, type LocalSessionInfo, runnerRootOf } from "./local-session-info.js";

// Snapshots: a tar.gz of the workspace in the snapshot store, named by its id, checked by its sha256.

const run = promisify(execFile);

/** `metadata` of a snapshot ref of this runner (what `snapshot()` writes). */
const LocalSnapshotMetadataSchema = z.object({
  format: z.literal("tar.gz"),
  archive: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
  created_at: z.string(),
  source_session_id: z.string(),
});
type LocalSnapshotMetadata = z.infer<typeof LocalSnapshotMetadataSchema>;

/** What a ref must name to be restored (refs written before `format` and `size` were kept have the rest). */
const RestorableSnapshotSchema = LocalSnapshotMetadataSchema.pick({ archive: true, sha256: true });

/** Archives the session's workspace (its mounts left out) into the snapshot store. */
export async function takeSnapshot(info: LocalSessionInfo): Promise<RunnerSnapshotRef> {
  const snapshotId = `snap-${randomUUID()}`;
  const runnerRoot = runnerRootOf(info);
  await ensurePrivateDir(info.snapshotDir, "snapshot store");
  const archive = join(info.snapshotDir, `${snapshotId}.tar.gz`);
  // Created here, exclusive and 0600: tar writes into it, never through a name someone planted.
  await (await fs.open(archive, "wx", 0o600)).close();
  // Mount points (buckets, binds) are not part of the workspace's own content.
  const excludes = info.mounts.map(
    (m) =>
      `--exclude=./${confinePath(m.path, { root: runnerRoot, access: "write" }).slice(runnerRoot.length + 1)}`,
  );
  try {
    await run("tar", ["-czf", archive, ...excludes, "-C", info.workspaceRoot, "."], {
      maxBuffer: 1024 * 1024,
    });
  } catch (error) {
    await fs.rm(archive, { force: true });
    throw new RunnerError("snapshot_failed", `could not archive the workspace: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const bytes = await fs.readFile(archive);
  const metadata: LocalSnapshotMetadata = {
    format: "tar.gz",
    archive,
    size: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    created_at: new Date().toISOString(),
    source_session_id: info.sessionId,
  };
  return { provider_id: LOCAL_PROVIDER_ID, snapshot_id: snapshotId, metadata };
}

/**
 * The archive of a snapshot to restore, checked: one this runner wrote, present, matching its checksum.
 * `SessionNotFoundError` when it is not in the store, `snapshot_corrupt` when its bytes changed.
 */
export async function snapshotToRestore(snapshot: RunnerSnapshotRef): Promise<string> {
  const snap = RestorableSnapshotSchema.safeParse(snapshot.metadata);
  if (!snap.success)
    throw new RunnerError(
      "invalid_request",
      `state.snapshot.metadata is not a unix-local snapshot: ${snap.error.issues[0]?.message}`,
    );
  let bytes: Buffer;
  try {
    await checkSnapshotArchive(snap.data.archive, snapshot.snapshot_id);
    bytes = await fs.readFile(snap.data.archive);
  } catch (error) {
    throw new SessionNotFoundError(
      {
        providerId: LOCAL_PROVIDER_ID,
        sessionId: snapshot.snapshot_id,
        message: `snapshot '${snapshot.snapshot_id}' is not in the store`,
      },
      { cause: error },
    );
  }
  if (createHash("sha256").update(bytes).digest("hex") !== snap.data.sha256)
    throw new RunnerError(
      "snapshot_corrupt",
      `snapshot '${snapshot.snapshot_id}' does not match its checksum`,
    );
  return snap.data.archive;
}

/** Unpacks a checked snapshot archive into a new workspace. */
export async function extractSnapshot(archive: string, workspaceRoot: string): Promise<void> {
  await run("tar", ["-xzf", archive, "-C", workspaceRoot]);
}

/**
 * Deletes a snapshot's archive from the store. Only an archive this runner wrote is removed; an unknown or
 * already deleted one resolves; anything else a ref names is refused.
 */
export async function deleteSnapshotArchive(ref: RunnerSnapshotRef): Promise<void> {
  checkProviderId(LOCAL_PROVIDER_ID, "snapshot", ref.provider_id);
  const archive = LocalSnapshotMetadataSchema.pick({ archive: true }).safeParse(ref.metadata);
  if (!archive.success)
    throw new RunnerError("invalid_request", "snapshot metadata names no archive of unix-local");
  try {
    await checkSnapshotArchive(archive.data.archive, ref.snapshot_id);
  } catch (error) {
    if (RunnerError.isInstance(error) && error.code === "not_found") return;
    throw error;
  }
  await fs.rm(archive.data.archive, { force: true });
}

/**
 * A snapshot archive named by a ref or a state is read or deleted only if it is one this runner wrote: a regular
 * file (not a link) named `<snapshot_id>.tar.gz` with `snap-<uuid>` as the id, owned by this user. Anything
 * else — a host file a hostile state points at — is refused, untouched.
 */
async function checkSnapshotArchive(archive: string, snapshotId: string): Promise<void> {
  const name = /^snap-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  if (!name.test(snapshotId) || basename(archive) !== `${snapshotId}.tar.gz` || !archive.startsWith("/"))
    throw new RunnerError(
      "invalid_request",
      `snapshot '${snapshotId}' does not name an archive of this runner`,
    );
  let st: Awaited<ReturnType<typeof fs.lstat>>;
  try {
    st = await fs.lstat(archive);
  } catch {
    throw new RunnerError("not_found", `snapshot '${snapshotId}' is not in the store`);
  }
  const uid = process.getuid?.();
  if (!st.isFile() || (uid !== undefined && st.uid !== uid))
    throw new RunnerError(
      "invalid_request",
      `snapshot '${snapshotId}' does not name an archive of this runner`,
    );
}
