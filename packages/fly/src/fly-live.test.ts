import { describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// Runs only with a real token and an app: FLY_API_TOKEN=… RODER_FLY_TEST_APP=my-app pnpm vitest run packages/fly
const live = Boolean(process.env.FLY_API_TOKEN && process.env.RODER_FLY_TEST_APP);

describe.skipIf(!live)("fly (live smoke test)", () => {
  it("creates a machine, runs a command, moves a file and destroys the machine", async () => {
    const provider = createFlyProvider();
    const session = await provider.createSession({
      id: "live-smoke",
      provider_id: "fly",
      config: {
        app: process.env.RODER_FLY_TEST_APP!,
        image: process.env.RODER_FLY_TEST_IMAGE ?? "debian:bookworm-slim",
        cmd: ["sleep", "infinity"],
      },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const r = await session.runCommand({
        command_id: "uname",
        program: "uname",
        args: ["-a"],
        timeout_ms: 30_000,
      });
      expect(r.exit_code).toBe(0);
      await session.writeFile({ path: "smoke.bin", contents: new Uint8Array([0, 1, 255]) });
      expect([...(await session.readFile({ path: "smoke.bin" })).contents]).toEqual([0, 1, 255]);
    } finally {
      await session.close();
    }
  }, 300_000);
});
