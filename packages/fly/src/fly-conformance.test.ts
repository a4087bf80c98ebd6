import { createLocalProvider } from "@roder/runner-local";
import { describeRunnerConformance, type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { expect } from "vitest";
import { createFlyProvider } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

const TOKEN = "fly-token-canary-58c1e2";
let standIn: FlyStandIn;

describeRunnerConformance({
  name: "fly → Machines API stand-in → unix-local",
  setup: async () => {
    standIn = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN });
  },
  teardown: async () => {
    // Every session of the suite was closed: no machine is left running.
    expect(standIn.machines().map((m) => `${m.id}:${m.state}`)).toEqual([]);
    await standIn.stop();
  },
  createProvider: () =>
    createFlyProvider({ baseUrl: standIn.baseUrl, env: { FLY_API_TOKEN: standIn.token } }),
  destination: () => ({
    id: "fly-dest",
    provider_id: "fly",
    // The stand-in's machines share this host's network, so the preview URL is the loopback port.
    config: {
      app: "roder-test",
      image: "debian:bookworm-slim",
      public_url_template: "http://127.0.0.1:{port}",
    },
    default_manifest: { entries: [], mounts: [] },
  }),
  secretValues: [TOKEN],
  fileScope: "sandbox",
  countLiveSessions: () => standIn.machines().filter((m) => m.state !== "destroyed").length,
  sweeper: {
    owner: "roder-runners",
    create: () =>
      createFlySweeper({
        app: "roder-test",
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token },
      }),
  },
});
