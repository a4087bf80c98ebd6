import { createHash } from "node:crypto";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, type S3Emulator, startFlyStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentImage, makeAgentImage } from "./__fixtures__/agent-image.js";
import { createFlyProvider } from "./fly-provider.js";

// Artifact export in agent mode: the machine (a network of its own in the stand-in, so it cannot reach the S3
// stand-in on this host's loopback) is read through the agent and the host streams the bytes to the bucket.
let standIn: FlyStandIn;
let s3: S3Emulator;
let image: AgentImage;

beforeAll(async () => {
  image = await makeAgentImage();
  [standIn, s3] = await Promise.all([
    startFlyStandIn({ backend: createLocalProvider(), imageDirs: image.dirs }),
    startS3Emulator({ buckets: ["fly-agent-art"] }),
  ]);
}, 240_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), s3?.stop()]);
  image?.remove();
});

describe("fly agent mode: artifact export (stream path)", () => {
  it("exports a file and a directory through the agent, byte for byte, with no exec", async () => {
    const session = await createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: {
        FLY_API_TOKEN: standIn.token,
        RODER_SECRET_ART_ACCESS_KEY_ID: "S3RVER",
        RODER_SECRET_ART_SECRET_ACCESS_KEY: "S3RVER",
      },
    }).createSession({
      id: "fly-agent-art",
      provider_id: "fly",
      config: {
        app: "roder-agent-art",
        image: "roder-runner-agent:local",
        image_has_agent: true,
        agent_command: image.command,
        agent_url: standIn.appUrl,
        artifacts: {
          credentials: { id: "art" },
          endpoint: s3.endpoint,
          uri: "s3://fly-agent-art/out",
          mode: "stream",
        },
      },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const made = await session.runCommand({
        command_id: "mk",
        program: "sh",
        args: [
          "-c",
          "mkdir -p build && head -c 5000000 /dev/urandom > build/app.bin && sha256sum build/app.bin",
        ],
      });
      const file = await session.exportArtifact({ path: "build/app.bin", recursive: false });
      expect(file.metadata).toMatchObject({ size: 5_000_000, transfer: "stream", bucket: "fly-agent-art" });
      const got = Buffer.from(await (await fetch(file.url!)).arrayBuffer());
      expect(createHash("sha256").update(got).digest("hex")).toBe(made.stdout.split(" ")[0]);
      const dir = await session.exportArtifact({ path: "build", recursive: true });
      expect(dir.artifact_id).toMatch(/^s3:\/\/fly-agent-art\/out\/.+\/build\.tar\.gz$/);
      expect(standIn.requests.filter((r) => r.path.endsWith("/exec"))).toEqual([]);
    } finally {
      await session.close();
    }
    expect(standIn.machines()).toEqual([]);
  }, 120_000);
});
