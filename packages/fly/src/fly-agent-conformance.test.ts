import { createLocalProvider } from "@roder/runner-local";
import {
  describeRunnerConformance,
  describeSandboxConformance,
  type FlyStandIn,
  startFlyStandIn,
} from "@roder/runner-testkit";
import { expect } from "vitest";
import { type AgentImage, makeAgentImage } from "./__fixtures__/agent-image.js";
import { createFlyProvider } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

// Agent mode through the Machines API stand-in with its defaults (rate limits, 408 exec edge, resets): the
// machine's init is this repository's built CLI (`roder-runner serve`, a copy of packages/cli/dist and what it
// loads, run with this Node), and every command, file and stream goes to it over the HTTP runner protocol through
// the stand-in's app address, pinned with `fly-force-instance-id`. No exec is sent after create.
const TOKEN = "fly-agent-token-canary-3f9d1a";
let image: AgentImage;

const agentConfig = (standIn: FlyStandIn) => ({
  app: "roder-agent",
  image: "roder-runner-agent:local",
  image_has_agent: true,
  agent_command: image.command,
  agent_url: standIn.appUrl,
  // The stand-in's machines with a service have networks of their own: previews are URLs, not reachable here.
  public_url_template: "https://{app}.fly.dev:{port}",
});

let standIn: FlyStandIn;
let sandboxStandIn: FlyStandIn;

describeRunnerConformance({
  name: "fly agent mode → Machines API stand-in → roder-runner serve in the machine",
  setup: async () => {
    image = await makeAgentImage();
    standIn = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN, imageDirs: image.dirs });
  },
  teardown: async () => {
    // Every session of the suite was closed: no machine is left running, and no exec was ever sent.
    expect(standIn.machines().map((m) => `${m.id}:${m.state}`)).toEqual([]);
    expect(standIn.requests.filter((r) => r.path.endsWith("/exec"))).toEqual([]);
    await standIn.stop();
    image.remove();
  },
  createProvider: () =>
    createFlyProvider({ baseUrl: standIn.baseUrl, env: { FLY_API_TOKEN: standIn.token } }),
  destination: () => ({
    id: "fly-agent-dest",
    provider_id: "fly",
    config: agentConfig(standIn),
    default_manifest: { entries: [], mounts: [] },
  }),
  secretValues: [TOKEN],
  portPreview: "url-only",
  largeFileBytes: 64 * 1024 * 1024,
  // Through the agent, as over the HTTP provider (exec mode refuses both).
  interactive: ["stdin", "pty"],
  fileStreams: true,
  fileScope: "workspace",
  countLiveSessions: () => standIn.machines().filter((m) => m.state !== "destroyed").length,
  sweeper: {
    owner: "roder-runners",
    create: () =>
      createFlySweeper({
        app: "roder-agent",
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token },
      }),
  },
});

describeSandboxConformance({
  name: "fly agent mode → Machines API stand-in → roder-runner serve in the machine",
  setup: async () => {
    image = await makeAgentImage();
    sandboxStandIn = await startFlyStandIn({
      backend: createLocalProvider(),
      token: TOKEN,
      imageDirs: image.dirs,
    });
  },
  teardown: async () => {
    await sandboxStandIn.stop();
    image.remove();
  },
  createProvider: () =>
    createFlyProvider({ baseUrl: sandboxStandIn.baseUrl, env: { FLY_API_TOKEN: sandboxStandIn.token } }),
  destination: () => ({
    id: "fly-agent-sandbox",
    provider_id: "fly",
    config: agentConfig(sandboxStandIn),
    default_manifest: { entries: [], mounts: [] },
  }),
  isolated: true,
  // Each machine of the stand-in with a service has a network namespace of its own with outbound access.
  network: "egress",
  portPreview: "url-only",
  hostVisible: true,
});
