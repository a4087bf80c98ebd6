import { describeRunnerConformance } from "@roder/runner-testkit";
import { createLocalProvider } from "./local-provider.js";

for (const isolation of ["none", "bwrap"] as const) {
  describeRunnerConformance({
    name: `unix-local (isolation ${isolation})`,
    createProvider: () => createLocalProvider(),
    destination: {
      id: `local-${isolation}`,
      provider_id: "unix-local",
      config: { isolation },
      default_manifest: { entries: [], mounts: [] },
    },
  });
}
