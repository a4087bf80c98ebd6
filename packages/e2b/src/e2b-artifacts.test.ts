import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, type S3Emulator, startE2bStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

let standIn: E2bStandIn;
let s3: S3Emulator;
const CANARY = "e2b-artifact-secret-canary-77";

beforeAll(async () => {
  [standIn, s3] = await Promise.all([
    startE2bStandIn({ backend: createLocalProvider() }),
    startS3Emulator({ buckets: ["e2b-art"] }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), s3?.stop()]);
});

/** A session whose artifacts go to s3rver's `e2b-art` bucket (`artifacts` overrides the target's fields). */
function openSession(id: string, secret: string, artifacts: Record<string, unknown>) {
  return createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: {
      E2B_API_KEY: standIn.apiKey,
      RODER_SECRET_ART_ACCESS_KEY_ID: "S3RVER",
      RODER_SECRET_ART_SECRET_ACCESS_KEY: secret,
    },
  }).createSession({
    id,
    provider_id: "e2b",
    config: {
      template: "base",
      artifacts: { credentials: { id: "art" }, endpoint: s3.endpoint, ...artifacts },
    },
    default_manifest: { entries: [], mounts: [] },
  });
}

describe("e2b artifact export (direct path: the sandbox uploads to a signed URL)", () => {
  it("exports a file and a directory; the signed URL never reaches a command line; nothing is left", async () => {
    const session = await openSession("e2b-art", CANARY, { uri: "s3://e2b-art/out" });
    try {
      const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 17) & 255);
      await session.writeFile({ path: "build/app.bin", contents: bytes });
      await session.writeFile({ path: "build/notes.txt", contents: new TextEncoder().encode("n") });
      const file = await session.exportArtifact({ path: "build/app.bin", recursive: false });
      expect(file.metadata).toMatchObject({ size: 70_000, transfer: "direct", bucket: "e2b-art" });
      expect(Buffer.from(await (await fetch(file.url!)).arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
      const dir = await session.exportArtifact({ path: "build", recursive: true });
      expect(dir.artifact_id).toMatch(/^s3:\/\/e2b-art\/out\/.+\/build\.tar\.gz$/);
      expect(JSON.stringify(file) + JSON.stringify(dir)).not.toContain(CANARY);
      // A file anywhere in the sandbox's view (file scope "sandbox"): here its /tmp.
      await session.writeFile({ path: "/tmp/outside.txt", contents: "from /tmp" });
      const outside = await session.exportArtifact({ path: "/tmp/outside.txt", recursive: false });
      expect(outside.artifact_id).toMatch(/^s3:\/\/e2b-art\/out\/.+\/outside\.txt$/);
      expect(await (await fetch(outside.url!)).text()).toBe("from /tmp");
      // The directory's archive was made in the sandbox's /tmp and removed; nothing in the workspace either.
      const left = await session.runCommand({
        command_id: "ls",
        program: "sh",
        args: ["-c", "ls -A /tmp | grep -c roder-artifact; ls -A . | grep -c '^.roder' || true"],
      });
      expect(left.stdout.trim().split("\n")).toEqual(["0", "0"]);
    } finally {
      await session.close();
    }
  }, 60_000);
});

describe("e2b artifact export (stream path: envd streams the file to the host)", () => {
  it("streams a 9 MiB artifact byte for byte", async () => {
    const session = await openSession("e2b-art-stream", "S3RVER", {
      uri: "s3://e2b-art/streamed",
      mode: "stream",
    });
    try {
      const made = await session.runCommand({
        command_id: "mk",
        program: "sh",
        args: ["-c", "head -c 9437184 /dev/urandom > big.bin && sha256sum big.bin"],
      });
      const before = standIn.requests.length;
      const r = await session.exportArtifact({ path: "big.bin", recursive: false });
      expect(r.metadata).toMatchObject({ size: 9437184, transfer: "stream" });
      // One streamed GET of the file through envd's files API.
      expect(
        standIn.requests.slice(before).filter((q) => q.method === "GET" && q.path === "/files"),
      ).toHaveLength(1);
      const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      const { createHash } = await import("node:crypto");
      expect(createHash("sha256").update(got).digest("hex")).toBe(made.stdout.split(" ")[0]);
    } finally {
      await session.close();
    }
  }, 60_000);
});
