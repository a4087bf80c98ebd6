import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxConformance, type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { createFlyProvider } from "./fly-provider.js";

// The sandbox model through the Machines API: a machine is one sandbox for its life (the stand-in runs it as
// one local bubblewrap sandbox on this host's network), and commands cannot leave it.
const TOKEN = "fly-sandbox-token-92be71";
let standIn: FlyStandIn;

describeSandboxConformance({
  name: "fly → Machines API stand-in → unix-local",
  setup: async () => {
    standIn = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN });
  },
  teardown: async () => {
    await standIn.stop();
  },
  createProvider: () =>
    createFlyProvider({ baseUrl: standIn.baseUrl, env: { FLY_API_TOKEN: standIn.token } }),
  destination: () => ({
    id: "fly-sandbox",
    provider_id: "fly",
    // The stand-in's machines share this host's network, so the preview URL is the loopback port.
    config: {
      app: "roder-test",
      image: "debian:bookworm-slim",
      public_url_template: "http://127.0.0.1:{port}",
    },
    default_manifest: { entries: [], mounts: [] },
  }),
  isolated: true,
  network: "host",
  hostVisible: true,
});
