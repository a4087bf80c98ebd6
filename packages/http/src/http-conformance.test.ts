import type { RunnerCapabilities } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { describeRunnerConformance } from "@roder/runner-testkit";
import { createHttpRunnerProvider, fetchRunnerServerInfo } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";
import { createHttpSweeper } from "./http-sweeper.js";

const TOKEN = "test-token-7c1d9e0b4a";
let server: RunnerServer;
let url = "";
let capabilities: RunnerCapabilities;

describeRunnerConformance({
  name: "http → server → unix-local",
  setup: async () => {
    server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
    url = (await server.listen(0)).url;
    // The provider learns what the server's backend supports, so the capability checks are exact.
    capabilities = (await fetchRunnerServerInfo({ baseUrl: url, token: TOKEN })).capabilities;
  },
  teardown: async () => {
    await server.close();
  },
  createProvider: () =>
    createHttpRunnerProvider({
      baseUrl: url,
      env: { RODER_RUNNER_HTTP_TOKEN: TOKEN },
      capabilities,
      owner: "conformance-http",
    }),
  sweeper: { owner: "conformance-http", create: () => createHttpSweeper({ baseUrl: url, token: TOKEN }) },
  destination: () => ({
    id: "http-dest",
    provider_id: "http",
    config: { backend_config: { isolation: "none" } },
    default_manifest: { entries: [], mounts: [] },
  }),
  secretValues: [TOKEN],
  countLiveSessions: () => server.sessionCount(),
  fileStreams: true,
  interactive: ["stdin", "pty"],
});

// In front of an isolated backend (one bubblewrap per session), the file API addresses the sandbox's whole
// view through the server too: the server says so in its create answer (`file_scope: "sandbox"`) and the client
// leaves the confining to it (issue 23).
let isolatedServer: RunnerServer;
let isolatedUrl = "";
describeRunnerConformance({
  name: "http → server → unix-local (bwrap)",
  setup: async () => {
    isolatedServer = createRunnerServer({
      provider: createLocalProvider(),
      token: TOKEN,
      isolation: "bwrap",
    });
    isolatedUrl = (await isolatedServer.listen(0)).url;
  },
  teardown: async () => {
    await isolatedServer.close();
  },
  createProvider: () =>
    createHttpRunnerProvider({ baseUrl: isolatedUrl, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } }),
  destination: () => ({
    id: "http-dest-bwrap",
    provider_id: "http",
    config: null,
    default_manifest: { entries: [], mounts: [] },
  }),
  secretValues: [TOKEN],
  fileScope: "sandbox",
  fileStreams: true,
  interactive: ["stdin", "pty"],
  countLiveSessions: () => isolatedServer.sessionCount(),
});
