import { describeRunnerConformance } from "@roder/runner-testkit";
import { describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

// Against the real Machines API, only when a maintainer sets a token and an app (`pnpm test:live`):
//   FLY_API_TOKEN=$(fly tokens create deploy -a my-app) FLY_APP=my-app pnpm test:live
// Exec mode on FLY_IMAGE (default debian:bookworm-slim, kept up with `sleep infinity`); with FLY_AGENT_IMAGE (an
// image built from packages/fly/agent/Dockerfile) the suite also runs in agent mode, through
// https://<app>.fly.dev (the app needs public IPs). FLY_REGION picks the region. Machines are tagged with the
// owner `roder-live-test` and destroyed by the suite (the sweeper check removes one it made itself).
const token = process.env.FLY_API_TOKEN;
const app = process.env.FLY_APP ?? process.env.RODER_FLY_TEST_APP;
const live = Boolean(token && app);
const region = process.env.FLY_REGION;
const owner = "roder-live-test";

const provider = () => createFlyProvider({ owner });
const destination = (id: string, config: Record<string, unknown>) => ({
  id,
  provider_id: "fly",
  config: { app: app!, ...(region ? { region } : {}), ...config },
  default_manifest: { entries: [], mounts: [] },
});
const sweeper = { owner, create: () => createFlySweeper({ app: app!, owner }) };

if (live) {
  describeRunnerConformance({
    name: `fly exec mode (live, app ${app})`,
    createProvider: provider,
    destination: () =>
      destination("live-exec", {
        image: process.env.FLY_IMAGE ?? "debian:bookworm-slim",
        cmd: ["sleep", "infinity"],
      }),
    secretValues: [token!],
    portPreview: "url-only",
    fileScope: "sandbox",
    sweeper,
  });
  if (process.env.FLY_AGENT_IMAGE)
    describeRunnerConformance({
      name: `fly agent mode (live, app ${app})`,
      createProvider: provider,
      destination: () =>
        destination("live-agent", { image: process.env.FLY_AGENT_IMAGE, image_has_agent: true }),
      secretValues: [token!],
      portPreview: "url-only",
      largeFileBytes: 64 * 1024 * 1024,
      fileScope: "sandbox",
      sweeper,
    });
}

describe.skipIf(!live)("fly (live smoke test)", () => {
  it("creates a machine, runs a command, moves a file and destroys the machine", async () => {
    const session = await provider().createSession(
      destination("live-smoke", {
        image: process.env.FLY_IMAGE ?? "debian:bookworm-slim",
        cmd: ["sleep", "infinity"],
      }),
    );
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
