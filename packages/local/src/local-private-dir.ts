import { promises as fs } from "node:fs";
import { RunnerError } from "@roder/runner-contract";

/**
 * Makes (or checks) a directory private to this user: created 0700; an existing one must be a real directory
 * (not a symlink) owned by this user, and is refused if another user made it (they could read or plant what the
 * runner writes there) — a runtime directory under a shared /tmp is created first by whoever comes first.
 * One of ours that is open to others is closed (chmod 0700).
 */
export async function ensurePrivateDir(path: string, what: string): Promise<void> {
  await fs.mkdir(path, { recursive: true, mode: 0o700 });
  const st = await fs.lstat(path);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid))
    throw new RunnerError(
      "unsafe_directory",
      `the ${what} ${path} is ${st.isDirectory() ? `owned by uid ${st.uid}, not this user (${uid})` : "not a directory"}: refusing to use it (remove it, or point the provider elsewhere)`,
    );
  if ((st.mode & 0o077) !== 0) await fs.chmod(path, 0o700);
}
