import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { z } from "zod";
import { type BwrapSandboxOptions, bwrapSandboxArgs } from "./local-bwrap.js";
import { endCgroup, killMarked } from "./local-cgroup.js";
import { collectStderr, isAlive, killRef, nsInode, type ProcRef, procStart } from "./local-proc.js";
import { slirpReady, spawnSlirp } from "./local-slirp.js";

// A session's sandbox: its record, and its lifecycle (start, alive, end). The argv is local-bwrap.ts's, the
// network local-slirp.ts's, sessions without isolation local-cgroup.ts's.

/**
 * The network a session's sandbox gets. `none`: its own namespace with loopback only. `egress`: its own
 * namespace with outbound traffic through slirp4netns (a user-mode network stack); the host's loopback and
 * link-local addresses (cloud metadata) are unreachable. `host`: the host's network, shared.
 */
export type NetworkMode = "none" | "egress" | "host";

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

/** What bubblewrap writes on its `--info-fd`: the pid of the sandbox's init, as the host sees it. */
const BwrapInfoSchema = z.object({ "child-pid": z.number().int().positive() });

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
    const info = BwrapInfoSchema.safeParse(
      JSON.parse(await readInfo(holder.stdio[3] as NodeJS.ReadableStream, holderErr)),
    );
    if (!info.success) throw new Error(`bubblewrap's info names no child pid: ${holderErr().trim()}`);
    const pid = info.data["child-pid"];
    const start = procStart(pid);
    if (!start) throw new Error(`sandbox init ${pid} is gone: ${holderErr().trim()}`);
    init = { pid, start };
    const ready = await readLine(holder.stdout!, "sandbox", 10_000, holderErr);
    if (ready !== "ready") throw new Error(`sandbox said '${ready}'`);
    const userns = nsInode(pid, "user");
    if (!userns || userns === nsInode("self", "user")) throw new Error("sandbox has no user namespace");
    let slirpRef: (ProcRef & { api: string }) | null = null;
    if (opts.network === "egress") {
      slirp = await spawnSlirp(
        opts.slirp4netns!,
        pid,
        opts.sideDir,
        holder.stdio[4] as NodeJS.ReadableStream,
      );
      slirpRef = await slirpReady(slirp, pid, opts.sideDir);
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
