import { createLocalProvider } from "@roder/runner-local";
import { describeRunnerConformance, type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { expect } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";
import { createE2bSweeper } from "./e2b-sweeper.js";

const KEY = "e2b_canary_key_4d8c1f0a9b";
let standIn: E2bStandIn;

describeRunnerConformance({
  name: "e2b (official SDK) → E2B stand-in → unix-local",
  setup: async () => {
    standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
  },
  teardown: async () => {
    expect(standIn.sandboxes().map((s) => s.sandboxID)).toEqual([]);
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
    id: "e2b-dest",
    provider_id: "e2b",
    config: { template: "base" },
    default_manifest: { entries: [], mounts: [] },
  },
  // The preview URL is E2B's host name for the port, which does not resolve here.
  portPreview: "url-only",
  // stdin through envd's pipe (commands.sendStdin / closeStdin), a terminal through its PTY (pty.create).
  interactive: ["stdin", "pty"],
  // An E2B sandbox is its own machine: the file API and cwd address its whole view.
  fileScope: "sandbox",
  secretValues: [KEY],
  countLiveSessions: () => standIn.sandboxes().length,
  sweeper: {
    owner: "roder-runners",
    create: () =>
      createE2bSweeper({
        apiUrl: standIn.apiUrl,
        sandboxUrl: standIn.sandboxUrl,
        domain: standIn.domain,
        env: { E2B_API_KEY: KEY },
      }),
  },
});
