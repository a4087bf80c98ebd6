import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RemoteRunnerProvider, RunnerDestination, RunnerMount } from "@roder/runner-contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BoxStandIn, startBoxStandIn } from "../box-standin/box-standin.js";
import { type S3Emulator, startS3Emulator } from "../emulators/s3-emulator.js";

export interface SandboxMountsOptions {
  name: string;
  /**
   * The bucket kind to mount: `s3` (default, a real S3 emulator) or `box_storage` (the Box stand-in behind its
   * intercepting proxy on this machine's loopback: the sandbox must reach host loopback, as the Fly and E2B
   * stand-ins' machines do).
   */
  kind?: "s3" | "box_storage";
  /**
   * A provider whose sandboxes run commands on this machine (a stand-in over the local runner without bwrap,
   * so a FUSE mount made by one command is seen by the next), given the env that holds the bucket secret and
   * the directory to use as the sandbox's workspace root (the mounts go under it).
   */
  start: (
    env: Record<string, string>,
    workspaceRoot: string,
  ) => Promise<{
    provider: RemoteRunnerProvider;
    destination: (mounts: RunnerMount[]) => RunnerDestination;
    liveSandboxes: () => number;
    stop: () => Promise<void>;
  }>;
}

const fuseMountsUnder = (dir: string) =>
  readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[1]?.startsWith(dir) && /\bfuse/.test(l.split(" ")[2] ?? ""));

/** Command lines and environments of the rclone processes running now. */
function rcloneProcesses(): Array<{ cmdline: string; environ: string }> {
  const out: Array<{ cmdline: string; environ: string }> = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (/^\S*rclone mount /.test(cmdline))
        out.push({ cmdline, environ: readFileSync(`/proc/${pid}/environ`, "utf8") });
    } catch {}
  }
  return out;
}

/** One bucket backend of the suite: the env that holds the secret, the intent, and what the store holds. */
interface MountBackend {
  env: Record<string, string>;
  /** A secret value that must be in rclone's environment and nowhere else. */
  secret: string;
  intent(credentialsId: string): RunnerMount["intent"];
  /** Reads `name` in the store from the store's own side (absent: the suite checks through a reader session only). */
  stored?: (name: string) => string | undefined;
  stop(): Promise<void>;
}

async function s3Backend(): Promise<MountBackend> {
  const s3: S3Emulator = await startS3Emulator({ buckets: ["data"] });
  return {
    env: {
      RODER_SECRET_BUCKET_ACCESS_KEY_ID: s3.accessKeyId,
      RODER_SECRET_BUCKET_SECRET_ACCESS_KEY: s3.secretAccessKey,
      RODER_SECRET_BUCKET_ENDPOINT: s3.endpoint,
    },
    secret: s3.secretAccessKey,
    intent: (id) => ({ kind: "s3", uri: "s3://data/shared", credentials: { id } }),
    stop: () => s3.stop(),
  };
}

async function boxBackend(): Promise<MountBackend> {
  const box: BoxStandIn = await startBoxStandIn();
  const folder = box.mkdir("shared");
  const token = box.tokenJson();
  return {
    env: {
      RODER_SECRET_BUCKET_TOKEN_JSON: token,
      RODER_SECRET_BUCKET_TOKEN_URL: box.tokenUrl,
      RODER_SECRET_BUCKET_HTTPS_PROXY: box.proxyUrl,
      RODER_SECRET_BUCKET_CA_CERT_FILE: box.caCertFile,
    },
    secret: token,
    intent: (id) => ({ kind: "box_storage", uri: `box://${folder}`, credentials: { id } }),
    stored: (name) => box.readFile(`shared/${name}`)?.toString("utf8"),
    stop: () => box.stop(),
  };
}

/**
 * Bucket mounts inside the sandbox (rclone + FUSE, as Fly and E2B do them), against a real S3 emulator or the
 * Box stand-in: a write followed at once by `close` is in the bucket (for Box, checked in the stand-in's store),
 * another session reads it through a read-only mount, the secret is in the mount process's environment and
 * never on a command line, nothing stays mounted.
 */
export function describeSandboxMounts(options: SandboxMountsOptions): void {
  const kind = options.kind ?? "s3";
  describe(`${kind} mounts inside the sandbox: ${options.name}`, () => {
    let store: MountBackend;
    let started: Awaited<ReturnType<SandboxMountsOptions["start"]>>;
    const mnt = mkdtempSync(join(tmpdir(), "roder-sandbox-mnt-"));

    beforeAll(async () => {
      store = kind === "box_storage" ? await boxBackend() : await s3Backend();
      started = await options.start(store.env, mnt);
    }, 60_000);

    afterAll(async () => {
      for (const line of fuseMountsUnder(mnt)) {
        const { execFileSync } = await import("node:child_process");
        execFileSync("fusermount3", ["-uz", line.split(" ")[1]!]);
      }
      await started?.stop();
      await store?.stop();
      rmSync(mnt, { recursive: true, force: true });
    });

    const mount = (path: string, readOnly: boolean): RunnerMount => ({
      name: `data-${readOnly ? "ro" : "rw"}`,
      path,
      read_only: readOnly,
      intent: store.intent("bucket"),
    });

    it("writes through a read-write mount reach the bucket by close; another sandbox reads them read-only", async () => {
      const { provider, destination } = started;
      const rwPath = join(mnt, "a", "data");
      const writer = await provider.createSession(destination([mount(rwPath, false)]));
      expect(fuseMountsUnder(rwPath)).toHaveLength(1);
      // The secret is in rclone's environment (inside the sandbox), never on its command line or in state.
      const procs = rcloneProcesses().filter((p) => p.cmdline.includes(rwPath));
      expect(procs).toHaveLength(1);
      expect(procs[0]!.cmdline).not.toContain(store.secret);
      expect(procs[0]!.environ).toContain(`=${store.secret}`);
      expect(JSON.stringify(writer.state())).not.toContain(store.secret);
      const r = await writer.runCommand({
        command_id: "w",
        program: "sh",
        args: ["-c", 'echo hello > "$1/out.txt"', "sh", rwPath],
      });
      expect(r.exit_code, r.stderr).toBe(0);
      const big = await writer.runCommand({
        command_id: "big",
        program: "sh",
        args: ["-c", 'seq 1 60000 > "$1/big.txt"', "sh", rwPath],
      });
      expect(big.exit_code, big.stderr).toBe(0);
      // Closed at once: the write-back must be drained first.
      await writer.close();
      expect(fuseMountsUnder(rwPath)).toEqual([]);
      const seq = `${Array.from({ length: 60000 }, (_, i) => i + 1).join("\n")}\n`;
      // Where the store can be read from its own side, the bytes are there the moment close returns.
      if (store.stored) {
        expect(store.stored("out.txt")).toBe("hello\n");
        expect(store.stored("big.txt")).toBe(seq);
      }

      const roPath = join(mnt, "b", "data");
      const reader = await provider.createSession(destination([mount(roPath, true)]));
      expect(
        new TextDecoder().decode((await reader.readFile({ path: join(roPath, "out.txt") })).contents),
      ).toBe("hello\n");
      expect(
        new TextDecoder().decode((await reader.readFile({ path: join(roPath, "big.txt") })).contents),
      ).toBe(seq);
      const denied = await reader.runCommand({
        command_id: "ro",
        program: "sh",
        args: ["-c", 'echo no > "$1/new.txt"', "sh", roPath],
      });
      expect(denied.exit_code).not.toBe(0);
      await reader.close();
      expect(fuseMountsUnder(mnt)).toEqual([]);
      expect(started.liveSandboxes()).toBe(0);
    }, 120_000);

    it("a secret that is not set fails before create, naming the variables, and starts nothing", async () => {
      const { provider, destination } = started;
      const before = started.liveSandboxes();
      const d = destination([
        {
          ...mount(join(mnt, "c"), true),
          intent: store.intent("unset-bucket"),
        },
      ]);
      const e = await provider.createSession(d).catch((x: unknown) => x);
      expect(String((e as Error).message)).toContain("RODER_SECRET_UNSET_BUCKET_");
      expect(started.liveSandboxes()).toBe(before);
    });
  });
}
