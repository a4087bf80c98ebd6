import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Finds an executable on PATH (no shell). */
export function which(program: string, path = process.env.PATH ?? "/usr/bin:/bin"): string | null {
  for (const dir of path.split(delimiter)) {
    const full = join(dir, program);
    if (existsSync(full)) return full;
  }
  return null;
}

const SYSTEM_DIRS = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/**
 * bubblewrap arguments: the system read-only, the workspace read-write at the same path, a private /tmp,
 * /dev and /proc, the read roots read-only, a new PID namespace that dies with its parent. Nothing else of
 * the host (home directories, other workspaces, /work, /root, /var) is visible.
 */
export function bwrapArgs(opts: {
  bwrap: string;
  workspace: string;
  /** Where commands see the workspace (default: its host path). */
  mountAt?: string;
  readRoots: readonly string[];
  cwd: string;
  unsharePid?: boolean;
}): string[] {
  const args = [
    opts.bwrap,
    "--die-with-parent",
    ...(opts.unsharePid === false ? [] : ["--unshare-pid"]),
    "--unshare-ipc",
    "--unshare-uts",
  ];
  for (const dir of SYSTEM_DIRS) {
    if (!existsSync(dir)) continue;
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
    else args.push("--ro-bind", dir, dir);
  }
  args.push("--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run", "--dir", "/var/tmp");
  for (const r of opts.readRoots) if (existsSync(r)) args.push("--ro-bind", r, r);
  args.push("--bind", opts.workspace, opts.mountAt ?? opts.workspace, "--chdir", opts.cwd, "--");
  return args;
}
