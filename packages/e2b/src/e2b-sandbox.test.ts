import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxConformance, type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { createE2bProvider } from "./e2b-provider.js";

// The sandbox model through the official SDK: an E2B sandbox is one machine for its life (the stand-in runs
// it as one local bubblewrap sandbox on this host's network), and commands cannot leave it.
const KEY = "e2b_sandbox_key_1b7e30c2";
let standIn: E2bStandIn;

describeSandboxConformance({
  name: "e2b (official SDK) → E2B stand-in → unix-local",
  setup: async () => {
    standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
  },
  teardown: async () => {
    await standIn.stop();
  },
  createProvider: () =>
    createE2bProvider({
      apiUrl: standIn.apiUrl,
      sandboxUrl: standIn.sandboxUrl,
      domain: standIn.domain,
      env: { E2B_API_KEY: KEY },
    }),
  destination: {
    id: "e2b-sandbox",
    provider_id: "e2b",
    config: { template: "base" },
    default_manifest: { entries: [], mounts: [] },
  },
  isolated: true,
  // The stand-in's sandboxes use this host's network (its loopback stands for the internet).
  network: "host",
  // E2B's preview host (`<port>-<id>.<domain>`) does not resolve here.
  portPreview: "url-only",
  hostVisible: true,
});
