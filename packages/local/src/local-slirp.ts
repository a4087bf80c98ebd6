import { type ChildProcess, execFile, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { RunnerError, UnsupportedCapabilityError } from "@roder/runner-contract";
import { collectStderr, type ProcRef, procStart } from "./local-proc.js";
import type { SandboxRecord } from "./local-sandbox.js";

// The network of a sandbox with network 'egress': slirp4netns (a user-mode network stack) on the sandbox's
// network namespace, and the port previews it forwards.

const run = promisify(execFile);

/**
 * Starts slirp4netns on the network namespace of the sandbox whose init is `pid`. `exitFd` is the sandbox's end
 * of the pipe whose closing tells slirp4netns to exit (when the sandbox ends). Its API socket is in `sideDir`.
 */
export async function spawnSlirp(
  slirp4netns: string,
  pid: number,
  sideDir: string,
  exitFd: NodeJS.ReadableStream,
): Promise<ChildProcess> {
  const api = join(sideDir, "slirp.sock");
  await fs.rm(api, { force: true });
  return spawn(
    slirp4netns,
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
      stdio: ["ignore", "ignore", "pipe", exitFd as never, "pipe"],
    },
  );
}

/**
 * Waits until the slirp4netns of `spawnSlirp` has configured the sandbox's tap device, then makes link-local
 * addresses (cloud metadata) unreachable in the sandbox. Its record, for the registry.
 */
export async function slirpReady(
  slirp: ChildProcess,
  pid: number,
  sideDir: string,
): Promise<ProcRef & { api: string }> {
  const slirpErr = collectStderr(slirp);
  await firstByte(slirp.stdio[4] as NodeJS.ReadableStream, slirpErr);
  const sstart = slirp.pid ? procStart(slirp.pid) : null;
  if (!slirp.pid || !sstart) throw new Error(`slirp4netns failed: ${slirpErr().trim()}`);
  // Link-local (cloud metadata) unreachable: a route commands cannot change (they hold no capability).
  await run("nsenter", [`--net=/proc/${pid}/ns/net`, "ip", "route", "add", "unreachable", "169.254.0.0/16"]);
  return { pid: slirp.pid, start: sstart, api: join(sideDir, "slirp.sock") };
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
