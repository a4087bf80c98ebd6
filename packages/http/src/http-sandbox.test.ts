import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxConformance } from "@roder/runner-testkit";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// The sandbox model through the HTTP protocol: a server whose operator enforces bubblewrap (as
// `roder-runner serve` does by default), and one without isolation.
const TOKEN = "sandbox-token-3f9a1c5e";

for (const isolation of ["bwrap", "none"] as const) {
  let server: RunnerServer;
  let url = "";
  describeSandboxConformance({
    name: `http → server (isolation ${isolation}) → unix-local`,
    setup: async () => {
      server = createRunnerServer({
        provider: createLocalProvider(),
        token: TOKEN,
        enforceConfig: { isolation },
      });
      url = (await server.listen(0)).url;
    },
    teardown: async () => {
      await server.close();
    },
    createProvider: () => createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } }),
    destination: () => ({
      id: "http-sandbox",
      provider_id: "http",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    }),
    isolated: isolation === "bwrap",
    hostVisible: true,
  });
}
