import { describeSandboxConformance } from "@roder/runner-testkit";
import { createLocalProvider } from "./local-provider.js";

// The sandbox model on every local mode: one sandbox per session, and under bubblewrap one that holds when the
// runner is root (as here and in CI), tried from inside.
const destination = (config: Record<string, unknown>) => ({
  id: "local-sandbox",
  provider_id: "unix-local",
  config,
  default_manifest: { entries: [], mounts: [] },
});

describeSandboxConformance({
  name: "unix-local (isolation none)",
  createProvider: () => createLocalProvider(),
  destination: destination({ isolation: "none" }),
  isolated: false,
  hostVisible: true,
});

for (const network of ["egress", "none", "host"] as const) {
  describeSandboxConformance({
    name: `unix-local (bwrap, network ${network})`,
    createProvider: () => createLocalProvider(),
    destination: destination({ isolation: "bwrap", network }),
    isolated: true,
    network,
    portPreview: network === "none" ? "none" : "reachable",
    hostVisible: true,
  });
}

describeSandboxConformance({
  name: "unix-local (bwrap, workspace_path /workspace)",
  createProvider: () => createLocalProvider(),
  destination: destination({ isolation: "bwrap", workspace_path: "/workspace" }),
  isolated: true,
  hostVisible: true,
});
