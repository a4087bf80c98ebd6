import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  RemoteRunnerSession,
  RunnerCommandRequestInput,
  RunnerCommandResult,
  RunnerExportProgress,
  RunnerOutputChunk,
} from "@roder/runner-contract";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArtifactTargetConfigSchema, exportArtifact } from "./artifact-export.js";
import { type ArtifactSource, hostArtifactSource, sessionArtifactSource } from "./artifact-source.js";

// Progress of an export as a caller sees it (`onProgress`): phases in order, bytes the store acknowledged,
// mid-transfer values on multipart uploads, whatever the path (direct from the host, direct from a sandbox,
// stream through the host), and a listener that throws never breaks the export.
let s3: S3Emulator;
const work = mkdtempSync(join(tmpdir(), "roder-progress-"));
const big = join(work, "big.bin");
const small = join(work, "small.txt");
const SIZE = 16 * 1024 * 1024 + 5;

beforeAll(async () => {
  s3 = await startS3Emulator({ buckets: ["prog"] });
  const bytes = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) bytes[i] = (i * 2654435761) >>> 24;
  writeFileSync(big, bytes);
  writeFileSync(small, "a small artifact\n");
}, 60_000);
afterAll(async () => {
  await s3?.stop();
});

const target = (mode: "direct" | "stream") =>
  ArtifactTargetConfigSchema.parse({
    uri: "s3://prog/out",
    credentials: { id: "s3" },
    endpoint: s3.endpoint,
    force_path_style: true,
    mode,
    part_size_mib: 5,
    parallelism: 2,
  });
const env = { RODER_SECRET_S3_ACCESS_KEY_ID: "S3RVER", RODER_SECRET_S3_SECRET_ACCESS_KEY: "S3RVER" };

/** A session whose commands run as real processes here, with a streaming `startCommand` (what runners have). */
function streamingSession(used: string[]): RemoteRunnerSession {
  const spawnIt = (req: RunnerCommandRequestInput) =>
    spawn(req.program, req.args ?? [], {
      env: { PATH: process.env.PATH, ...Object.fromEntries(req.env ?? []) },
      stdio: ["ignore", "pipe", "pipe"],
    });
  return {
    runCommand: (req: RunnerCommandRequestInput) => {
      used.push("runCommand");
      return new Promise<RunnerCommandResult>((resolve, reject) => {
        const p = spawnIt(req);
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (b) => (stdout += b));
        p.stderr.on("data", (b) => (stderr += b));
        p.on("error", reject);
        p.on("close", (code) =>
          resolve({
            command_id: req.command_id ?? "c",
            exit_code: code,
            stdout,
            stderr,
          } as RunnerCommandResult),
        );
      });
    },
    startCommand: async (req: RunnerCommandRequestInput) => {
      used.push("startCommand");
      const p = spawnIt(req);
      let stdout = "";
      let stderr = "";
      const chunks: RunnerOutputChunk[] = [];
      let wake: (() => void) | undefined;
      let ended = false;
      p.stdout.on("data", (b: Buffer) => {
        stdout += b;
        chunks.push({ stream: "stdout", data: new Uint8Array(b) });
        wake?.();
      });
      p.stderr.on("data", (b) => (stderr += b));
      const done = new Promise<RunnerCommandResult>((resolve) =>
        p.on("close", (code) => {
          ended = true;
          wake?.();
          resolve({
            command_id: req.command_id ?? "c",
            exit_code: code,
            stdout,
            stderr,
          } as RunnerCommandResult);
        }),
      );
      return {
        commandId: req.command_id ?? "c",
        output: (async function* () {
          for (;;) {
            while (chunks.length) yield chunks.shift()!;
            if (ended) return;
            await new Promise<void>((r) => (wake = r));
          }
        })(),
        wait: () => done,
        kill: async () => p.kill("SIGKILL"),
      };
    },
  } as unknown as RemoteRunnerSession;
}

async function exportWith(
  source: ArtifactSource,
  mode: "direct" | "stream",
  path: string,
  onProgress: (p: RunnerExportProgress) => void,
) {
  return exportArtifact({
    providerId: "test",
    target: target(mode),
    env,
    source,
    request: { path: "artifact", recursive: false },
    path,
    onProgress,
  });
}

function checkSequence(events: RunnerExportProgress[], total: number) {
  expect(events[0]).toEqual({ phase: "preparing", bytes: 0 });
  expect(events[1]).toEqual({ phase: "uploading", bytes: 0, total });
  expect(events.at(-1)).toEqual({ phase: "done", bytes: total, total });
  const order = ["preparing", "uploading", "verifying", "done"];
  for (let i = 1; i < events.length; i++) {
    expect(order.indexOf(events[i]!.phase)).toBeGreaterThanOrEqual(order.indexOf(events[i - 1]!.phase));
    expect(events[i]!.bytes).toBeGreaterThanOrEqual(events[i - 1]!.bytes);
  }
  expect(events.some((e) => e.phase === "verifying" && e.bytes === total)).toBe(true);
}

describe("export progress", () => {
  const used: string[] = [];
  const cases = [
    ["direct from the host", "direct", () => hostArtifactSource()],
    [
      "direct from a sandbox that streams output",
      "direct",
      () => sessionArtifactSource(streamingSession(used), { tmpDir: work }),
    ],
    ["stream through the host", "stream", () => hostArtifactSource()],
  ] as const;

  for (const [name, mode, source] of cases)
    it(`${name}: phases in order, each part's bytes as the store acknowledges it`, async () => {
      const events: RunnerExportProgress[] = [];
      const r = await exportWith(source(), mode, big, (p) => events.push(p));
      expect(r.metadata).toMatchObject({ size: SIZE, parts: 4, transfer: mode });
      checkSequence(events, SIZE);
      // Four parts (5, 5, 5 MiB and 1 MiB + 5 bytes, acknowledged in any order): three values between 0 and the whole,
      // each a sum of whole parts.
      const mid = [...new Set(events.filter((e) => e.bytes > 0 && e.bytes < SIZE).map((e) => e.bytes))];
      expect(mid).toHaveLength(3);
      for (const m of mid) expect([0, SIZE % (5 * 1024 * 1024)]).toContain(m % (5 * 1024 * 1024));
    });

  it("a sandbox that can stream reports the parts while its script runs (startCommand, not runCommand)", () => {
    expect(used).toContain("startCommand");
    expect(used.filter((u) => u === "startCommand")).toHaveLength(1);
  });

  it("a single PUT reports 0 then the whole file", async () => {
    const events: RunnerExportProgress[] = [];
    const size = "a small artifact\n".length;
    await exportWith(hostArtifactSource(), "direct", small, (p) => events.push(p));
    checkSequence(events, size);
    expect(events.filter((e) => e.bytes > 0 && e.bytes < size)).toEqual([]);
  });

  it("a listener that throws does not break the export", async () => {
    let calls = 0;
    const r = await exportWith(hostArtifactSource(), "stream", big, () => {
      calls++;
      throw new Error("listener bug");
    });
    expect(r.metadata).toMatchObject({ size: SIZE });
    expect(calls).toBeGreaterThan(3);
  });

  it("a failed export never reports done", async () => {
    const events: RunnerExportProgress[] = [];
    const e = await exportWith(hostArtifactSource(), "direct", join(work, "missing.bin"), (p) =>
      events.push(p),
    ).catch((x) => x);
    expect(e).toBeInstanceOf(Error);
    expect(events.map((p) => p.phase)).not.toContain("done");
  });
});
