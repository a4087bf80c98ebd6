import { describeRunnerConformance } from "@roder/runner-testkit";
import { createLocalProvider } from "./local-provider.js";
import { createLocalSweeper } from "./local-sweeper.js";

// A secret the provider can see in its env: it must stay out of state(), snapshots and errors.
const SECRET = "conformance-secret-7f3a9c";
const env = { ...process.env, RODER_SECRET_CONFORMANCE: SECRET };

for (const isolation of ["none", "bwrap"] as const) {
  describeRunnerConformance({
    name: `unix-local (isolation ${isolation})`,
    createProvider: () => createLocalProvider({ env, owner: `conformance-local-${isolation}` }),
    secretValues: [SECRET],
    fileScope: isolation === "bwrap" ? "sandbox" : "workspace",
    interactive: ["stdin", "pty"],
    fileStreams: true,
    sweeper: { owner: `conformance-local-${isolation}`, create: () => createLocalSweeper() },
    destination: {
      id: `local-${isolation}`,
      provider_id: "unix-local",
      config: { isolation },
      default_manifest: { entries: [], mounts: [] },
    },
  });
}

// As a cloud sandbox has it: commands see the workspace at a fixed path (/workspace), not the host path.
describeRunnerConformance({
  name: "unix-local (bwrap, workspace_path /workspace)",
  createProvider: () => createLocalProvider(),
  fileScope: "sandbox",
  interactive: ["stdin", "pty"],
  fileStreams: true,
  destination: {
    id: "local-fixed-path",
    provider_id: "unix-local",
    config: { isolation: "bwrap", workspace_path: "/workspace" },
    default_manifest: { entries: [], mounts: [] },
  },
});
