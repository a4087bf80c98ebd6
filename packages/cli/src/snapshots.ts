import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  codecs,
  createHttpClient,
  type RemoteRunnerProvider,
  type RunnerSessionState,
  type RunnerSnapshotRef,
} from "@roder/runner-contract";
import { StateRefusedError, writePrivateFile } from "./state-check.js";

/**
 * The CLI's snapshot index: every snapshot `roder-runner snapshot` takes is recorded as a restorable state
 * (the source session's state with `snapshot` set), one 0600 file per snapshot in a private directory of this
 * user. `snapshot list` reads it, `snapshot restore ID` resumes from it, `snapshot rm ID` deletes the snapshot
 * through its provider and drops the record.
 */
export interface IndexedSnapshot {
  ref: RunnerSnapshotRef;
  /** The source session's state with `snapshot: ref`: what `resumeSession` restores from. */
  state: RunnerSessionState;
}

/** `RODER_RUNNER_STATE_DIR`, else `$XDG_STATE_HOME/roder-runner`, else `~/.local/state/roder-runner`. */
export function stateDir(env: Record<string, string | undefined>): string {
  if (env.RODER_RUNNER_STATE_DIR) return env.RODER_RUNNER_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(base, "roder-runner");
}

/** The index directory, made 0700 if missing; refused when it is not a private directory of this user. */
function indexDir(env: Record<string, string | undefined>, create: boolean): string | null {
  const dir = join(stateDir(env), "snapshots");
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) return null;
  const uid = process.getuid?.() ?? -1;
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new StateRefusedError(`the snapshot index ${dir} is not a directory`);
  if (uid >= 0 && st.uid !== uid)
    throw new StateRefusedError(`the snapshot index ${dir} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o077) !== 0)
    throw new StateRefusedError(
      `the snapshot index ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it`,
    );
  return dir;
}

const fileOf = (dir: string, id: string) =>
  join(
    dir,
    /^[A-Za-z0-9._-]{1,128}$/.test(id) && !id.startsWith(".")
      ? `${id}.json`
      : `${createHash("sha256").update(id).digest("hex")}.json`,
  );

export function recordSnapshot(
  env: Record<string, string | undefined>,
  ref: RunnerSnapshotRef,
  source: RunnerSessionState,
): void {
  const dir = indexDir(env, true)!;
  const state: RunnerSessionState = { ...source, snapshot: ref };
  writePrivateFile(
    fileOf(dir, ref.snapshot_id),
    `${JSON.stringify({
      ref: JSON.parse(codecs.RunnerSnapshotRef.encode(ref)),
      state: JSON.parse(codecs.RunnerSessionState.encode(state)),
    })}\n`,
  );
}

function parseEntry(text: string): IndexedSnapshot | null {
  try {
    const raw = JSON.parse(text) as { ref?: unknown; state?: unknown };
    return {
      ref: codecs.RunnerSnapshotRef.parse(raw.ref),
      state: codecs.RunnerSessionState.parse(raw.state),
    };
  } catch {
    return null;
  }
}

export function listSnapshots(env: Record<string, string | undefined>): IndexedSnapshot[] {
  const dir = indexDir(env, false);
  if (!dir) return [];
  const out: IndexedSnapshot[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith(".json")) continue;
    const st = lstatSync(join(dir, name));
    if (!st.isFile()) continue;
    const entry = parseEntry(readFileSync(join(dir, name), "utf8"));
    if (entry) out.push(entry);
  }
  const created = (e: IndexedSnapshot) =>
    String((e.ref.metadata as { created_at?: unknown } | null)?.created_at ?? "");
  return out.sort((a, b) => created(a).localeCompare(created(b)));
}

export function findSnapshot(env: Record<string, string | undefined>, id: string): IndexedSnapshot | null {
  const dir = indexDir(env, false);
  if (!dir) return null;
  const file = fileOf(dir, id);
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (!st?.isFile()) return null;
  const entry = parseEntry(readFileSync(file, "utf8"));
  return entry && entry.ref.snapshot_id === id ? entry : null;
}

export function forgetSnapshot(env: Record<string, string | undefined>, id: string): void {
  const dir = indexDir(env, false);
  if (dir) rmSync(fileOf(dir, id), { force: true });
}

/** A provider that can delete a snapshot (the local provider; others as they gain it). */
type Deleter = RemoteRunnerProvider & { deleteSnapshot(ref: RunnerSnapshotRef): Promise<void> };
export const canDelete = (p: RemoteRunnerProvider): p is Deleter =>
  typeof (p as Partial<Deleter>).deleteSnapshot === "function";

/**
 * Deletes a snapshot of the runner server this CLI is configured for (`DELETE /snapshots/{id}`; idempotent, so
 * retried on a failed connection, 429 or 5xx, honouring Retry-After; 404 is done already). The token goes only to
 * `RODER_RUNNER_HTTP_URL`.
 */
export async function deleteHttpSnapshot(
  ref: RunnerSnapshotRef,
  env: Record<string, string | undefined>,
): Promise<void> {
  const base = env.RODER_RUNNER_HTTP_URL;
  const token = env.RODER_RUNNER_HTTP_TOKEN;
  if (!base || !token)
    throw new StateRefusedError(
      "deleting an http snapshot needs RODER_RUNNER_HTTP_URL and RODER_RUNNER_HTTP_TOKEN (the server it was taken on)",
    );
  await createHttpClient({ providerId: "http", baseUrl: base, auth: { token } }).request({
    method: "DELETE",
    path: `/snapshots/${encodeURIComponent(ref.snapshot_id)}`,
    operation: "delete snapshot",
    idempotent: true,
    okStatuses: [404],
    buffer: true,
  });
}
