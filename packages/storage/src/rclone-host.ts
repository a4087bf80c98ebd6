import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { createHttpClient, RunnerError, redactSecrets } from "@roder/runner-contract";
import { z } from "zod";
import type { RcloneMountPlan } from "./rclone-plan.js";

const run = promisify(execFile);

/** The part of rclone's `vfs/stats` answer the unmount waits on (no disk cache: nothing to wait for). */
const vfsStats = z.object({
  diskCache: z
    .object({ uploadsInProgress: z.number().nullish(), uploadsQueued: z.number().nullish() })
    .nullish(),
});

function isFuseMount(path: string): boolean {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .some((line) => {
        const f = line.split(" ");
        const sep = f.indexOf("-");
        return f[4] === path.replace(/ /g, "\\040") && (f[sep + 1] ?? "").startsWith("fuse");
      });
  } catch {
    return false;
  }
}

export interface HostMount {
  readonly pid: number;
  /** Waits until pending uploads drain (read-write mounts), then unmounts and waits for rclone to exit. */
  unmount(): Promise<void>;
}

/**
 * Runs a mount plan on this machine: the credentials go to rclone's environment only (the host environment is
 * not inherited, so nothing else leaks in), readiness is the FUSE mount point appearing.
 */
export async function mountOnHost(
  plan: RcloneMountPlan,
  opts: { signal?: AbortSignal } = {},
): Promise<HostMount> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    ...plan.env,
  };
  for (const u of plan.unsetEnv) delete env[u];
  const child: ChildProcess = spawn(plan.program, plan.args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const secrets = plan.secretEnv.map((k) => plan.env[k]!).filter(Boolean);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const deadline = Date.now() + plan.readiness.timeoutMs;
  for (;;) {
    if (isFuseMount(plan.mountPath)) break;
    if (child.exitCode !== null || opts.signal?.aborted || Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      throw new RunnerError(
        "mount_failed",
        `rclone could not mount ${plan.kind} at ${plan.mountPath}: ${redactSecrets(stderr.trim().split("\n").slice(-3).join(" | "), secrets) || "timed out"}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  let done = false;
  return {
    pid: child.pid!,
    async unmount() {
      if (done) return;
      done = true;
      if (plan.rcAddr) {
        // Wait for write-back to finish: recent writes are otherwise lost on unmount.
        const until = Date.now() + 120_000;
        const pass = plan.env.RCLONE_RC_PASS;
        // One attempt a poll (the loop is the retry); an rc that fails or does not answer ends the wait.
        const rc = createHttpClient({
          providerId: "rclone",
          baseUrl: `http://${plan.rcAddr}`,
          retry: { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0 },
          ...(pass
            ? {
                auth: {
                  token: Buffer.from(`${plan.env.RCLONE_RC_USER ?? "roder"}:${pass}`).toString("base64"),
                  scheme: "Basic",
                },
              }
            : {}),
        });
        while (Date.now() < until) {
          const stats = await rc
            .json(
              {
                method: "POST",
                path: "/vfs/stats",
                operation: "rclone vfs/stats",
                idempotent: true,
                timeoutMs: Math.max(1, until - Date.now()),
              },
              vfsStats,
            )
            .catch(() => null);
          const dc = stats?.diskCache;
          if (!dc || ((dc.uploadsInProgress ?? 0) === 0 && (dc.uploadsQueued ?? 0) === 0)) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      for (const step of plan.unmount) {
        try {
          await run(step.program, step.args);
          break;
        } catch {}
      }
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
