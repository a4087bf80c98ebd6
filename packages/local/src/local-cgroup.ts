import { existsSync, promises as fs, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { SandboxRecord } from "./local-sandbox.js";

// Sessions without isolation: a cgroup per session where the host allows one, else a marker scan.

/** Environment marker of every command of an unisolated session (the `/proc` scan of `close` looks for it). */
export const SESSION_MARKER = "RODER_SESSION_ID";

function cgroup2Root(): string | null {
  try {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const [pre, post] = line.split(" - ");
      if (post?.startsWith("cgroup2 ")) return pre!.split(" ")[4] ?? null;
    }
  } catch {}
  return null;
}

/** Makes the session's cgroup; null where cgroup v2 is not writable here (then the marker scan is used). */
export async function makeSessionCgroup(sessionId: string): Promise<SandboxRecord> {
  const root = cgroup2Root();
  if (root) {
    const path = join(root, "roder-runners", sessionId);
    try {
      await fs.mkdir(path, { recursive: true });
      if (existsSync(join(path, "cgroup.procs")) && existsSync(join(path, "cgroup.kill")))
        return { kind: "cgroup", path };
      await fs.rmdir(path).catch(() => {});
    } catch {}
  }
  return { kind: "marker" };
}

/** A cgroup path from the registry is used only if it is the session's own, under the cgroup2 root. */
export function ownCgroup(path: string, sessionId: string): boolean {
  const root = cgroup2Root();
  return root !== null && path === join(root, "roder-runners", sessionId);
}

/** argv that joins the session's cgroup before anything runs (so no child forked early escapes it). */
export function cgroupCommand(record: SandboxRecord & { kind: "cgroup" }, argv: string[]): string[] {
  // A missing program is reported as a user would expect ("PROG: command not found", 127), not in the words of
  // this wrapper shell.
  const script =
    'echo 0 > "$1" || exit 126; shift; command -v -- "$1" >/dev/null || { printf "%s: command not found\\n" "$1" >&2; exit 127; }; exec "$@"';
  return ["/bin/sh", "-c", script, "sh", join(record.path, "cgroup.procs"), ...argv];
}

export async function endCgroup(path: string): Promise<void> {
  try {
    statSync(path);
  } catch {
    return;
  }
  await fs.writeFile(join(path, "cgroup.kill"), "1").catch(() => {});
  for (let i = 0; i < 200; i++) {
    const procs = await fs.readFile(join(path, "cgroup.procs"), "utf8").catch(() => "");
    if (procs.trim() === "") break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await fs.rmdir(path).catch(() => {});
}

/** Kills every process of this user whose environment carries the session's marker (best effort). */
export async function killMarked(sessionId: string): Promise<void> {
  const needle = Buffer.from(`\0${SESSION_MARKER}=${sessionId}\0`);
  const first = Buffer.from(`${SESSION_MARKER}=${sessionId}\0`);
  for (let round = 0; round < 3; round++) {
    let found = 0;
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      if (pid === process.pid) continue;
      let env: Buffer;
      try {
        env = readFileSync(`/proc/${pid}/environ`);
      } catch {
        continue;
      }
      if (env.indexOf(needle) >= 0 || env.subarray(0, first.length).equals(first)) {
        found++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    if (found === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
