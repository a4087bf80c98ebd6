import { InvalidDestinationConfigError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, type S3Emulator, startFlyStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

let standIn: FlyStandIn;
let s3: S3Emulator;
const CANARY = "fly-artifact-secret-canary-77";

beforeAll(async () => {
  [standIn, s3] = await Promise.all([
    startFlyStandIn({ backend: createLocalProvider() }),
    startS3Emulator({ buckets: ["fly-art"] }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), s3?.stop()]);
});

/** A session whose artifacts go to s3rver's `fly-art` bucket (`artifacts` overrides the target's fields). */
function openSession(id: string, secret: string, artifacts: Record<string, unknown>) {
  return createFlyProvider({
    baseUrl: standIn.baseUrl,
    env: {
      FLY_API_TOKEN: standIn.token,
      RODER_SECRET_ART_ACCESS_KEY_ID: "S3RVER",
      RODER_SECRET_ART_SECRET_ACCESS_KEY: secret,
    },
  }).createSession({
    id,
    provider_id: "fly",
    config: {
      app: "roder-test",
      image: "debian:bookworm-slim",
      artifacts: { credentials: { id: "art" }, endpoint: s3.endpoint, ...artifacts },
    },
    default_manifest: { entries: [], mounts: [] },
  });
}

describe("fly artifact export (direct path: the machine uploads to a signed URL)", () => {
  it("exports a file and a directory; the signed URL never reaches a command line; nothing is left", async () => {
    const session = await openSession("fly-art", CANARY, { uri: "s3://fly-art/out" });
    try {
      const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 17) & 255);
      await session.writeFile({ path: "build/app.bin", contents: bytes });
      await session.writeFile({ path: "build/notes.txt", contents: new TextEncoder().encode("n") });
      const file = await session.exportArtifact({ path: "build/app.bin", recursive: false });
      expect(file.metadata).toMatchObject({ size: 70_000, transfer: "direct", bucket: "fly-art" });
      expect(Buffer.from(await (await fetch(file.url!)).arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
      const dir = await session.exportArtifact({ path: "build", recursive: true });
      expect(dir.artifact_id).toMatch(/^s3:\/\/fly-art\/out\/.+\/build\.tar\.gz$/);
      // File scope "sandbox": a path outside the workspace, as the machine sees it, exports too.
      await session.writeFile({ path: "/tmp/fly-art-abs.txt", contents: new TextEncoder().encode("abs") });
      const abs = await session.exportArtifact({ path: "/tmp/fly-art-abs.txt", recursive: false });
      expect(Buffer.from(await (await fetch(abs.url!)).arrayBuffer()).toString()).toBe("abs");
      // The export's commands reached the machine as exec bodies: no signature in any argv.
      const execs = JSON.stringify(standIn.bodies.filter((b) => b.path.endsWith("/exec")));
      expect(execs).not.toContain("X-Amz-Signature");
      expect(execs).not.toContain(CANARY);
      expect(JSON.stringify(file) + JSON.stringify(dir)).not.toContain(CANARY);
      const left = await session.runCommand({
        command_id: "ls",
        program: "sh",
        args: ["-c", "ls -A .roder/tmp 2>/dev/null | wc -l"],
      });
      expect(left.stdout.trim()).toBe("0");
    } finally {
      await session.close();
    }
  }, 60_000);
});

describe("fly artifact export (stream path: the host streams from the machine)", () => {
  it("reads a 9 MiB artifact in bounded ranged reads, byte for byte", async () => {
    const session = await openSession("fly-art-stream", "S3RVER", {
      uri: "s3://fly-art/streamed",
      mode: "stream",
    });
    try {
      const made = await session.runCommand({
        command_id: "mk",
        program: "sh",
        args: ["-c", "head -c 9437184 /dev/urandom > big.bin && sha256sum big.bin"],
      });
      const commands: string[][] = [];
      const run = session.runCommand.bind(session);
      session.runCommand = (req, o) => {
        commands.push(req.args ?? []);
        return run(req, o);
      };
      const r = await session.exportArtifact({ path: "big.bin", recursive: false });
      expect(r.metadata).toMatchObject({ size: 9437184, transfer: "stream" });
      const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      const { createHash } = await import("node:crypto");
      expect(createHash("sha256").update(got).digest("hex")).toBe(made.stdout.split(" ")[0]);
      // Three ranged reads of 4 MiB, not one read of the whole file.
      const ranges = commands.filter((args) => args.some((a) => a.includes("tail -c")));
      expect(ranges).toHaveLength(3);
    } finally {
      await session.close();
    }
  }, 60_000);
});

describe('fly artifact export (direct, verify: "after": the machine hashes while it uploads)', () => {
  it("uploads and reports the sha256 the machine computed alongside", async () => {
    const session = await openSession("fly-art-after", "S3RVER", {
      uri: "s3://fly-art/after",
      mode: "direct",
      verify: "after",
    });
    try {
      const made = await session.runCommand({
        command_id: "mk",
        program: "sh",
        args: ["-c", "head -c 5000000 /dev/urandom > out.bin && sha256sum out.bin"],
      });
      const r = await session.exportArtifact({ path: "out.bin", recursive: false });
      const sha = made.stdout.split(" ")[0];
      expect(r.metadata).toMatchObject({ size: 5000000, transfer: "direct", sha256: sha });
      const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      const { createHash } = await import("node:crypto");
      expect(createHash("sha256").update(got).digest("hex")).toBe(sha);
      // The hashing scratch files never touched the workspace.
      const left = await session.runCommand({ command_id: "ls", program: "ls", args: ["-A"] });
      expect(left.stdout.split("\n").filter((n) => /\.(sha|md5)$|^s$|^m$/.test(n))).toEqual([]);
    } finally {
      await session.close();
    }
  }, 60_000);

  it("a bad artifacts config is refused before a machine is created (nothing to pay for, nothing left)", async () => {
    const before = standIn.requests.filter((r) => r.method === "POST" && /\/machines$/.test(r.path)).length;
    for (const artifacts of [
      { uri: "s3://fly-art/out", mode: "sideways" },
      { uri: "s3://fly-art/out", part_size_mib: 1 },
    ]) {
      const e = await openSession("fly-bad-art", CANARY, artifacts).catch((x) => x);
      expect(e).toBeInstanceOf(InvalidDestinationConfigError);
      expect(String(e.message)).toMatch(/^.*artifacts: /);
    }
    const after = standIn.requests.filter((r) => r.method === "POST" && /\/machines$/.test(r.path)).length;
    expect(after).toBe(before);
  });
});
