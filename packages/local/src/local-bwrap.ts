import { existsSync, lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { NetworkMode, SandboxRecord } from "./local-sandbox.js";

// The argv of bubblewrap: the sandbox a session's commands live in, and the way each command enters it.

/** The uid and gid commands have inside an isolated sandbox (the sandbox's user; the host's files are not its). */
export const SANDBOX_UID = 1000;

const SYSTEM_DIRS = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/**
 * Entries of /etc that its owner may read and others may not (`/etc/shadow`, `/etc/ssl/private`, …). Inside
 * the sandbox, the host's root-owned files belong to the sandbox's user (its uid maps to the runner's), so
 * these are masked: commands see what an unprivileged user of the host would see.
 */
function privateEtcEntries(): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = join(dir, name);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) continue;
      const hidden = (st.mode & 0o004) === 0;
      if (st.isDirectory()) {
        if (hidden || (st.mode & 0o001) === 0) dirs.push(p);
        else if (depth < 6) walk(p, depth + 1);
      } else if (st.isFile() && hidden) files.push(p);
    }
  };
  walk("/etc", 0);
  return { files, dirs };
}

let etcMasks: { files: string[]; dirs: string[] } | undefined;

export interface BwrapSandboxOptions {
  bwrap: string;
  workspace: string;
  /** Where commands see the workspace. */
  mountAt: string;
  readRoots: readonly string[];
  network: NetworkMode;
  /** A private directory of the runner's (not visible in the sandbox) for the sandbox's side files. */
  sideDir: string;
  slirp4netns: string | null;
}

export function bwrapSandboxArgs(opts: BwrapSandboxOptions): string[] {
  const root = process.getuid?.() === 0;
  const args = [
    "--unshare-user",
    "--uid",
    String(SANDBOX_UID),
    "--gid",
    String(SANDBOX_UID),
    ...(root ? ["--cap-drop", "ALL"] : []),
    "--disable-userns",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--hostname",
    "sandbox",
    ...(opts.network === "host" ? [] : ["--unshare-net"]),
  ];
  for (const dir of SYSTEM_DIRS) {
    if (!existsSync(dir)) continue;
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
    else args.push("--ro-bind", dir, dir);
  }
  etcMasks ??= privateEtcEntries();
  for (const f of etcMasks.files) args.push("--ro-bind", "/dev/null", f);
  for (const d of etcMasks.dirs) args.push("--tmpfs", d, "--remount-ro", d);
  if (opts.network === "egress")
    args.push("--ro-bind", join(opts.sideDir, "resolv.conf"), "/etc/resolv.conf");
  args.push("--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run", "--dir", "/var/tmp");
  for (const r of opts.readRoots) if (existsSync(r)) args.push("--ro-bind", r, r);
  args.push("--bind", opts.workspace, opts.mountAt, "--chdir", opts.mountAt);
  return args;
}

/**
 * argv that runs `argv` inside the sandbox: no-new-privileges (set before entering, kept across exec), then the
 * sandbox's namespaces and root, as its user; the command keeps no capability. `cwd` is a sandbox path.
 */
export function sandboxCommand(
  tools: { setpriv: string; nsenter: string },
  record: SandboxRecord & { kind: "bwrap" },
  argv: string[],
  cwd: string,
  home: string,
): string[] {
  return [
    tools.setpriv,
    "--no-new-privs",
    "--",
    tools.nsenter,
    "-t",
    String(record.init.pid),
    "-U",
    "-m",
    "-p",
    "-n",
    "-i",
    "-u",
    "--root",
    "--wd",
    "--preserve-credentials",
    "--",
    ...(cwd === home ? [] : ["/usr/bin/env", "-C", cwd]),
    ...argv,
  ];
}
