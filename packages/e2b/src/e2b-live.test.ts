import { describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

// Runs only with a real key: E2B_API_KEY=… pnpm vitest run packages/e2b/src/e2b-live.test.ts
describe.skipIf(!process.env.E2B_API_KEY)("e2b (live smoke test)", () => {
  it("creates a sandbox, runs a command, moves a file and kills it", async () => {
    const session = await createE2bProvider().createSession({
      id: "live",
      provider_id: "e2b",
      config: { template: "base", ttl_seconds: 300 },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const r = await session.runCommand({
        command_id: "c",
        program: "uname",
        args: ["-a"],
        timeout_ms: 30_000,
      });
      expect(r.exit_code).toBe(0);
      await session.writeFile({ path: "smoke.bin", contents: new Uint8Array([0, 255]) });
      expect([...(await session.readFile({ path: "smoke.bin" })).contents]).toEqual([0, 255]);
    } finally {
      await session.close();
    }
  }, 180_000);
});
