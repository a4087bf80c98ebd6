import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import { hostname } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import {
  type OwnedSession,
  PathOutsideWorkspaceError,
  RunnerError,
  type SweepableProvider,
} from "@roder/runner-contract";
import { ownCgroup } from "./local-cgroup.js";
import { readRegisteredSandbox, trustedRegistryDir } from "./local-registry.js";
import { endSandbox, type SandboxRecord } from "./local-sandbox.js";
import { LOCAL_PROVIDER_ID } from "./local-session-info.js";
import { defaultLocalRoot, readTag, SESSION_DIR_PATTERN, type SessionTag, tagPathFor } from "./local-tags.js";

const run = promisify(execFile);

export interface LocalSweeperSettings {
  /**
   * The directory holding the session workspaces and their tags: the provider's `root` (default
   * `<tmp>/roder-local-<uid>`), or a destination's `workspace_dir`.
   */
  root?: string;
  /**
   * A `local-<uuid>` directory with no tag (left by a version without tags, or by hand) counts as orphaned
   * once it is this old, and is listed for every owner with `state: "orphaned"`. Default 10 minutes.
   */
  orphanGraceMs?: number;
}

/**
 * Lists and removes the `unix-local` sessions under one root, by the owner tag written beside each workspace
 * at creation. `state` is the tag's (`creating`, `ready`), `abandoned` for a session whose creating process
 * died before `createSession` returned (it expires at its creation: no caller ever got it), or `orphaned`
 * for an untagged session directory. A kept workspace (`delete_on_close: false`) is never listed.
 */
export function createLocalSweeper(settings: LocalSweeperSettings = {}): SweepableProvider {
  const root = settings.root ?? defaultLocalRoot();
  const graceMs = settings.orphanGraceMs ?? 10 * 60_000;

  const realRoot = async (): Promise<string | null> => {
    try {
      return await fs.realpath(root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  };

  return {
    id: LOCAL_PROVIDER_ID,
    async listOwnedSessions({ owner }): Promise<OwnedSession[]> {
      const base = await realRoot();
      if (!base) return [];
      const ids = new Set<string>();
      const dirs = new Set<string>();
      for (const e of await fs.readdir(base, { withFileTypes: true })) {
        if (e.isDirectory() && SESSION_DIR_PATTERN.test(e.name)) {
          ids.add(e.name);
          dirs.add(e.name);
        } else if (e.isFile() && e.name.endsWith(".session.json")) {
          const id = e.name.slice(0, -".session.json".length);
          if (SESSION_DIR_PATTERN.test(id)) ids.add(id);
        }
      }
      const out: OwnedSession[] = [];
      for (const id of [...ids].sort()) {
        const tag = await readTag(tagPathFor(join(base, id)));
        if (tag) {
          if (tag.owner !== owner || tag.state === "kept") continue;
          const abandoned = tag.state === "creating" && creatorGone(tag);
          out.push({
            session_id: id,
            expires_at: abandoned ? tag.created_at : tag.expires_at,
            state: abandoned ? "abandoned" : tag.state,
          });
        } else if (dirs.has(id)) {
          const st = await fs.stat(join(base, id)).catch(() => null);
          if (!st || Date.now() - st.mtimeMs < graceMs) continue;
          out.push({
            session_id: id,
            expires_at: new Date(st.mtimeMs + graceMs).toISOString(),
            state: "orphaned",
          });
        }
      }
      return out;
    },

    /**
     * Unmounts what is mounted under the workspace (FUSE: `fusermount3 -uz`; binds: `umount -l`), then removes
     * the workspace, its tag and its registry entry. Only a `local-<uuid>` directory directly under the root
     * (by real path) is removed; an id already gone is a no-op.
     */
    async destroySession(sessionId) {
      if (!SESSION_DIR_PATTERN.test(sessionId))
        throw new RunnerError("invalid_request", `'${sessionId}' is not a unix-local session id`);
      const base = await realRoot();
      if (!base) return;
      const dir = join(base, sessionId);
      const tagFile = tagPathFor(dir);
      const tag = await readTag(tagFile);
      // The session's sandbox (or cgroup) ends first: nothing it started outlives it or holds its mounts.
      if (tag?.registry_dir && isAbsolute(tag.registry_dir))
        await endSandbox(await registeredSandbox(tag.registry_dir, sessionId), sessionId);
      const st = await fs.lstat(dir).catch(() => null);
      if (st) {
        const real = st.isDirectory() && !st.isSymbolicLink() ? await fs.realpath(dir) : null;
        if (real === null || dirname(real) !== base)
          throw new PathOutsideWorkspaceError({
            path: dir,
            root: base,
            reason:
              "a session entry that is not a directory directly under the sweeper's root is not removed",
          });
        await unmountUnder(real);
        await fs.rm(real, { recursive: true, force: true });
      }
      if (tag?.registry_dir && isAbsolute(tag.registry_dir)) {
        await fs.rm(join(tag.registry_dir, `${sessionId}.sandbox`), { recursive: true, force: true });
        await fs.rm(join(tag.registry_dir, `${sessionId}.json`), { force: true }).catch(() => {});
      }
      await fs.rm(tagFile, { force: true });
    },
  };
}

/** Whether the process that wrote a `creating` tag is gone (only decidable on the same host). */
function creatorGone(tag: SessionTag): boolean {
  if (tag.hostname !== hostname()) return false;
  try {
    process.kill(tag.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** Mount points at or under `dir` (this mount namespace), deepest first, with their filesystem types. */
async function mountsUnder(dir: string): Promise<Array<{ path: string; fstype: string }>> {
  const text = await fs.readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const out: Array<{ path: string; fstype: string }> = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (fields.length < 5 || sep < 0) continue;
    // Mount points escape space, tab, newline and backslash as octal.
    const path = fields[4]!.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(Number.parseInt(o, 8)),
    );
    if (path === dir || path.startsWith(`${dir}/`)) out.push({ path, fstype: fields[sep + 1] ?? "" });
  }
  return out.sort((a, b) => b.path.length - a.path.length);
}

async function unmountUnder(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) {
    const attempts: Array<[string, string[]]> = m.fstype.startsWith("fuse")
      ? [
          ["fusermount3", ["-uz", m.path]],
          ["umount", ["-l", m.path]],
        ]
      : [["umount", ["-l", m.path]]];
    for (const [program, args] of attempts) {
      try {
        await run(program, args);
        break;
      } catch {}
    }
  }
  const left = await mountsUnder(dir);
  // Never recurse into a mount: removing the workspace would delete the mounted data.
  if (left.length)
    throw new RunnerError(
      "io_error",
      `could not unmount ${left.map((m) => m.path).join(", ")}; the workspace ${dir} is left in place`,
    );
}

/** The sandbox the runner recorded for a session (a cgroup only if it is the session's own). */
async function registeredSandbox(registryDir: string, sessionId: string): Promise<SandboxRecord | null> {
  try {
    if (!(await trustedRegistryDir(registryDir))) return null;
  } catch {
    return { kind: "marker" };
  }
  const rec = await readRegisteredSandbox(registryDir, sessionId);
  if (rec?.kind === "cgroup" && !ownCgroup(rec.path, sessionId)) return { kind: "marker" };
  return rec ?? { kind: "marker" };
}
