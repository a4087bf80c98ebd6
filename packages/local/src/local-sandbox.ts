import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  existsSync,
  promises as fs,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
} from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { RunnerError, UnsupportedCapabilityError } from "@roder/runner-contract";

const run = promisify(execFile);

/**
 * The network a session's sandbox gets. `none`: its own namespace with loopback only. `egress`: its own
 * namespace with outbound traffic through slirp4netns (a user-mode network stack); the host's loopback and
 * link-local addresses (cloud metadata) are unreachable. `host`: the host's network, shared.
 */
export type NetworkMode = "none" | "egress" | "host";

/** A process this runner started, named with its start time so that a recycled pid is never taken for it. */
export interface ProcRef {
  pid: number;
  start: string;
}

/** How a session's processes are held together, recorded in the runner's own registry (never in state). */
export type SandboxRecord =
  | {
      kind: "bwrap";
      /** PID 1 of the sandbox's PID namespace (bubblewrap's init): commands enter its namespaces. */
      init: ProcRef;
      /** Inode of the sandbox's user namespace: commands never enter a namespace that is not it. */
      userns: string;
      network: NetworkMode;
      slirp: (ProcRef & { api: string }) | null;
      /** Port previews: sandbox port → host port on 127.0.0.1. */
      forwards: Record<string, number>;
    }
  | { kind: "cgroup"; path: string }
  | { kind: "marker" };

/** The uid and gid commands have inside an isolated sandbox (the sandbox's user; the host's files are not its). */
export const SANDBOX_UID = 1000;
/** Environment marker of every command of an unisolated session (the `/proc` scan of `close` looks for it). */
export const SESSION_MARKER = "RODER_SESSION_ID";

/** `starttime` of /proc/<pid>/stat (clock ticks since boot), or null when the process is gone. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export function isAlive(ref: ProcRef): boolean {
  return procStart(ref.pid) === ref.start;
}

function nsInode(pid: number | "self", ns: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** Kills a process we started (never a recycled pid), and waits until it is gone (bounded). */
export async function killRef(ref: ProcRef | null | undefined): Promise<void> {
  if (!ref || !isAlive(ref)) return;
  try {
    process.kill(ref.pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 200 && isAlive(ref); i++) await new Promise((r) => setTimeout(r, 10));
}

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

function readLine(stream: NodeJS.ReadableStream, what: string, timeoutMs: number, stderr: () => string) {
  return new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => done(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(null, buf.slice(0, nl));
    };
    const onEnd = () => done(new Error(`${what} ended: ${stderr().trim() || "no message"}`));
    const done = (error: Error | null, line?: string) => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      if (error) reject(error);
      else resolve(line!);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
  });
}

function collectStderr(child: ChildProcess): () => string {
  let text = "";
  child.stderr?.on("data", (b: Buffer) => {
    if (text.length < 4096) text += b.toString("utf8");
  });
  return () => text;
}

/**
 * Starts the session's sandbox: one bubblewrap whose init holds the namespaces (user, PID, mount with a
 * private /tmp, IPC, UTS, network unless `host`) for the session's life. Commands enter it with
 * `sandboxCommand`. The sandbox outlives the process that made it (another process may resume the session);
 * `endSandbox` ends it and everything in it.
 */
export async function startBwrapSandbox(
  opts: BwrapSandboxOptions,
): Promise<SandboxRecord & { kind: "bwrap" }> {
  if (opts.network === "egress" && !opts.slirp4netns)
    throw new RunnerError(
      "missing_dependency",
      "network 'egress' needs slirp4netns, which is not installed: apt-get install slirp4netns (or ask for network 'none')",
    );
  await fs.mkdir(opts.sideDir, { recursive: true, mode: 0o700 });
  if (opts.network === "egress")
    await fs.writeFile(join(opts.sideDir, "resolv.conf"), "nameserver 10.0.2.3\n", { mode: 0o644 });
  const args = [
    ...bwrapSandboxArgs(opts),
    "--info-fd",
    "3",
    "--",
    "/bin/sh",
    "-c",
    "echo ready; exec sleep infinity",
  ];
  const holder = spawn(opts.bwrap, args, {
    detached: true,
    cwd: "/",
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdio: ["ignore", "pipe", "pipe", "pipe", opts.network === "egress" ? "pipe" : "ignore"],
  });
  const holderErr = collectStderr(holder);
  let init: ProcRef | null = null;
  let slirp: ChildProcess | null = null;
  try {
    const info = JSON.parse(await readInfo(holder.stdio[3] as NodeJS.ReadableStream, holderErr)) as {
      "child-pid": number;
    };
    const pid = info["child-pid"];
    const start = procStart(pid);
    if (!start) throw new Error(`sandbox init ${pid} is gone: ${holderErr().trim()}`);
    init = { pid, start };
    const ready = await readLine(holder.stdout!, "sandbox", 10_000, holderErr);
    if (ready !== "ready") throw new Error(`sandbox said '${ready}'`);
    const userns = nsInode(pid, "user");
    if (!userns || userns === nsInode("self", "user")) throw new Error("sandbox has no user namespace");
    let slirpRef: (ProcRef & { api: string }) | null = null;
    if (opts.network === "egress") {
      const api = join(opts.sideDir, "slirp.sock");
      await fs.rm(api, { force: true });
      slirp = spawn(
        opts.slirp4netns!,
        [
          "--configure",
          "--mtu=65520",
          "--disable-host-loopback",
          `--api-socket=${api}`,
          "--exit-fd=3",
          "--ready-fd=4",
          "--netns-type=path",
          `/proc/${pid}/ns/net`,
          "tap0",
        ],
        {
          detached: true,
          cwd: "/",
          stdio: ["ignore", "ignore", "pipe", holder.stdio[4] as NodeJS.ReadableStream as never, "pipe"],
        },
      );
      const slirpErr = collectStderr(slirp);
      await firstByte(slirp.stdio[4] as NodeJS.ReadableStream, slirpErr);
      const sstart = slirp.pid ? procStart(slirp.pid) : null;
      if (!slirp.pid || !sstart) throw new Error(`slirp4netns failed: ${slirpErr().trim()}`);
      slirpRef = { pid: slirp.pid, start: sstart, api };
      // Link-local (cloud metadata) unreachable: a route commands cannot change (they hold no capability).
      await run("nsenter", [
        `--net=/proc/${pid}/ns/net`,
        "ip",
        "route",
        "add",
        "unreachable",
        "169.254.0.0/16",
      ]);
    }
    return { kind: "bwrap", init, userns, network: opts.network, slirp: slirpRef, forwards: {} };
  } catch (error) {
    await killRef(init);
    if (slirp?.pid) await killRef({ pid: slirp.pid, start: procStart(slirp.pid) ?? "" });
    holder.kill("SIGKILL");
    throw new RunnerError(
      "sandbox_failed",
      `could not start the session's sandbox: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    for (const s of holder.stdio) (s as { destroy?: () => void } | null)?.destroy?.();
    holder.unref();
    if (slirp) {
      for (const s of slirp.stdio) (s as { destroy?: () => void } | null)?.destroy?.();
      slirp.unref();
    }
  }
}

/** slirp4netns writes "1" on its ready fd once the tap device is configured. */
function firstByte(stream: NodeJS.ReadableStream, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("slirp4netns was not ready in 10 s")), 10_000);
    stream.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    stream.once("end", () => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns failed: ${stderr().trim() || "no message"}`));
    });
  });
}

async function readInfo(stream: NodeJS.ReadableStream, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("bubblewrap gave no info in 10 s")), 10_000);
    stream.on("data", (b: Buffer) => {
      buf += b.toString("utf8");
      if (buf.includes("}")) {
        clearTimeout(timer);
        resolve(buf.slice(0, buf.indexOf("}") + 1));
      }
    });
    stream.on("end", () => {
      clearTimeout(timer);
      reject(new Error(`bubblewrap failed: ${stderr().trim() || "no message"}`));
    });
  });
}

/** Whether the record names a live sandbox of ours: its init alive and still in the recorded user namespace. */
export function sandboxAlive(record: SandboxRecord): boolean {
  if (record.kind !== "bwrap") return true;
  return isAlive(record.init) && nsInode(record.init.pid, "user") === record.userns;
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

/** Ends the sandbox and every process in it (PID 1 of a PID namespace takes the namespace with it). */
export async function endSandbox(record: SandboxRecord | null | undefined, sessionId: string): Promise<void> {
  if (!record) return;
  if (record.kind === "bwrap") {
    if (sandboxAlive(record)) await killRef(record.init);
    await killRef(record.slirp);
    return;
  }
  if (record.kind === "cgroup") await endCgroup(record.path);
  await killMarked(sessionId);
}

// --- sessions without isolation: a cgroup per session where the host allows one, else a marker scan ---

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

async function endCgroup(path: string): Promise<void> {
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
async function killMarked(sessionId: string): Promise<void> {
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

// --- port previews into a sandbox of its own network (slirp4netns port forwarding) ---

/** A free TCP port on the host's loopback (for port forwards and rclone's remote control). */
export async function freeHostPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function slirpCall(api: string, body: unknown): Promise<{ return?: unknown; error?: { desc?: string } }> {
  return new Promise((resolve, reject) => {
    const sock = connect(api);
    let buf = "";
    sock.setTimeout(5000, () => sock.destroy(new Error("slirp4netns API did not answer")));
    sock.on("connect", () => sock.end(JSON.stringify(body)));
    sock.on("data", (b) => {
      buf += b.toString("utf8");
    });
    sock.on("error", reject);
    sock.on("close", () => {
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new Error(`slirp4netns API answered '${buf.slice(0, 200)}'`));
      }
    });
  });
}

/**
 * Forwards 127.0.0.1:<host port> of the host to `port` of the sandbox (its tap address: a server must listen on
 * 0.0.0.0, as on any cloud sandbox). Returns the host port; the same port again returns the same forward.
 */
export async function forwardPort(
  record: SandboxRecord & { kind: "bwrap" },
  port: number,
  providerId: string,
): Promise<number> {
  if (record.network === "host") return port;
  if (record.network === "none" || !record.slirp)
    throw new UnsupportedCapabilityError({
      providerId,
      capability: "port_preview",
      message:
        "a sandbox with network 'none' has no port previews (it has no network but its own loopback): use network 'egress'",
    });
  const known = record.forwards[String(port)];
  if (known !== undefined) return known;
  for (let attempt = 0; attempt < 3; attempt++) {
    const hostPort = await freeHostPort();
    const answer = await slirpCall(record.slirp.api, {
      execute: "add_hostfwd",
      arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: hostPort, guest_port: port },
    });
    if (answer.error === undefined) {
      record.forwards[String(port)] = hostPort;
      return hostPort;
    }
    if (attempt === 2)
      throw new RunnerError(
        "port_forward_failed",
        `could not forward port ${port}: ${answer.error.desc ?? "slirp4netns refused"}`,
      );
  }
  throw new RunnerError("port_forward_failed", `could not forward port ${port}`);
}
