import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import {
  describeRunnerConformance,
  describeSandboxConformance,
  type FlyStandIn,
  startFlyStandIn,
} from "@roder/runner-testkit";
import { describe, expect, it } from "vitest";
import { type AgentImage, makeAgentImage } from "./__fixtures__/agent-image.js";
import { createFlyProvider } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

// Agent mode through the Machines API stand-in with its defaults (rate limits, 408 exec edge, resets): the
// machine's init is this repository's built CLI (`roder-runner serve`, a copy of packages/cli/dist and what it
// loads, run with this Node), and every command, file and stream goes to it over the HTTP runner protocol through
// the stand-in's app address, pinned with `fly-force-instance-id`. No exec is sent after create.
const TOKEN = "fly-agent-token-canary-3f9d1a";
let image: AgentImage;

const agentConfig = (standIn: FlyStandIn, agentImage: AgentImage = image) => ({
  app: "roder-agent",
  image: "roder-runner-agent:local",
  image_has_agent: true,
  agent_command: agentImage.command,
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
  // The agent runs with --host-is-sandbox: paths address the machine's own view (the stand-in's machine is a
  // bubblewrap sandbox: its /tmp is its own, its system read-only; the suite checks the host's files from here).
  fileScope: "sandbox",
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

// The agent runs `serve --isolation none --host-is-sandbox`: its file API addresses the machine's whole view. In
// the stand-in a machine is a bubblewrap sandbox with a root of its own: this host's system directories (/usr,
// /etc, ...) read-only, its own /tmp and /var/tmp, the workspace at /workspace. What the agent writes lands in
// the machine, never on this host, checked from here.
describe("fly agent mode: paths address the machine's own view", () => {
  it("/tmp and /var/tmp are the machine's, the system read-only, relative paths the workspace's; this host untouched", async () => {
    const img = await makeAgentImage();
    const s = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN, imageDirs: img.dirs });
    const provider = createFlyProvider({ baseUrl: s.baseUrl, env: { FLY_API_TOKEN: s.token } });
    const destination = {
      id: "fly-agent-scope",
      provider_id: "fly",
      config: agentConfig(s, img),
      default_manifest: { entries: [], mounts: [] },
    };
    const hostOnly = `/tmp/roder-host-only-${randomUUID()}`;
    writeFileSync(hostOnly, "this host's");
    const token = randomUUID();
    const session = await provider.createSession(destination);
    try {
      expect(provider.limits(destination).file_scope).toBe("sandbox");
      const machine = s.machines().find((m) => m.id === session.state().session_id)!;
      expect((machine.config as { init: { cmd: string[] } }).init.cmd).toContain("--host-is-sandbox");
      // Written through the agent in the machine's /tmp: a command there reads it; this host has no such file.
      await session.writeFile({ path: `/tmp/roder-agent-${token}`, contents: token });
      const seen = await session.runCommand({
        command_id: "cat",
        program: "cat",
        args: [`roder-agent-${token}`],
        cwd: "/tmp",
      });
      expect(seen.stdout).toBe(token);
      expect(existsSync(`/tmp/roder-agent-${token}`)).toBe(false);
      // This host's /tmp is not the machine's; its system files are (read-only).
      const e = await session.readFile({ path: hostOnly }).catch((x) => x);
      expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("not_found");
      expect((await session.readFile({ path: "/etc/hostname" })).contents).toEqual(
        new Uint8Array(readFileSync("/etc/hostname")),
      );
      // Its /var/tmp is its own too (written there, absent here); the system is read-only: a write fails there.
      await session.writeFile({ path: `/var/tmp/roder-agent-${token}`, contents: token });
      const there = await session.runCommand({
        command_id: "vt",
        program: "cat",
        args: [`/var/tmp/roder-agent-${token}`],
      });
      expect(there.stdout).toBe(token);
      expect(existsSync(`/var/tmp/roder-agent-${token}`)).toBe(false);
      const ro = await session
        .writeFile({ path: `/usr/roder-agent-${token}`, contents: "x" })
        .catch((x) => x);
      expect(RunnerError.isInstance(ro), String(ro)).toBe(true);
      expect(existsSync(`/usr/roder-agent-${token}`)).toBe(false);
      // Relative paths are the agent session's workspace, under workspace_root.
      await session.writeFile({ path: "rel.txt", contents: "in the workspace" });
      const root = (session.state().metadata as { workspace_root: string }).workspace_root;
      expect(root.startsWith("/workspace/")).toBe(true);
      const abs = await session.readFile({ path: `${root}/rel.txt` });
      expect(new TextDecoder().decode(abs.contents)).toBe("in the workspace");
    } finally {
      await session.close();
      rmSync(hostOnly, { force: true });
      await s.stop();
      img.remove();
    }
  }, 120_000);
});
