import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

// The main job: `bash scripts/demo.sh` runs packages/local/examples/demo.ts after the bootstrap. This runs the
// demo itself (a real S3 emulator it starts, real FUSE mounts, real exports) and checks what it printed.
const root = resolve(import.meta.dirname, "../../..");

describe("the demo (bash scripts/demo.sh)", () => {
  it("runs commands and files, mounts a bucket read-only and read-write, exports direct and streamed", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "packages/local/examples/demo.ts"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b) => (out += b));
    child.stderr.on("data", (b) => (out += b));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code, out).toBe(0);
    const line = (label: string) => out.split("\n").find((l) => l.trimStart().startsWith(label)) ?? "";
    expect(line("256 byte values")).toMatch(/round-trip ok$/);
    expect(line("GET")).toMatch(/served from the session$/);
    expect(line("emulator")).toMatch(/s3rver at http:\/\/127\.0\.0\.1:\d+/);
    // Mounts need rclone + FUSE (bootstrap installs them); the demo says when it cannot mount.
    if (!out.includes("   skipped")) {
      expect(line("data/ read-only")).toMatch(/s3:\/\/datasets\/train: a,b \| 1,2 \| refused$/);
      expect(line("results/ writable")).toMatch(/wrote results\/report\.txt \(2 lines counted\)/);
      expect(line("in the bucket")).toMatch(/s3:\/\/outputs\/run1\/report\.txt = 2 /);
    }
    expect(line("direct")).toMatch(
      /^ *direct +s3:\/\/outputs\/artifacts\/.+\/app\.bin \(256 bytes, transfer direct\)$/,
    );
    expect(line("streamed")).toMatch(/site\.tar\.gz \(\d+ bytes, transfer stream\)$/);
    expect(out.match(/signed URL GET +sha256 .*verified/g)).toHaveLength(2);
    expect(line("restored state.txt")).toMatch(/v1$/);
    expect(out).not.toMatch(/MISMATCH|missing \(/);
  }, 240_000);
});
