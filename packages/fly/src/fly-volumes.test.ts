import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  InvalidDestinationConfigError,
  ProviderApiError,
  type RunnerDestination,
  RunnerError,
} from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AgentImage, makeAgentImage } from "./__fixtures__/agent-image.js";
import { agentToken } from "./fly-agent.js";
import { createFlyProvider } from "./fly-provider.js";
import { FlyWorkspaceLostError } from "./fly-workspace-lost-error.js";

// The workspace on a Fly volume, in both modes, against the stand-in's defaults (stop then start resets a machine
// to its image; volumes keep their files): a resume after a reset keeps the workspace; without a volume it is a
// typed workspace_lost; the volume is created with the machine and deleted with it.
let image: AgentImage;
let standIn: FlyStandIn | undefined;
beforeAll(async () => {
  image = await makeAgentImage();
}, 240_000);
afterAll(() => image?.remove());
afterEach(async () => {
  await standIn?.stop();
  standIn = undefined;
});

const SECRET = "agent-secret-canary-77c3a9";

async function setup() {
  standIn = await startFlyStandIn({ backend: createLocalProvider(), imageDirs: image.dirs });
  const s = standIn;
  const provider = createFlyProvider({
    baseUrl: s.baseUrl,
    env: { FLY_API_TOKEN: s.token, RODER_FLY_AGENT_SECRET: SECRET },
    retry: { baseDelayMs: 50, maxDelayMs: 2000 },
  });
  const destination = (mode: "agent" | "exec", config: Record<string, unknown> = {}): RunnerDestination => ({
    id: `vol-${mode}`,
    provider_id: "fly",
    config: {
      app: "roder-vol",
      image: "roder-runner-agent:local",
      mode,
      ...(mode === "agent" ? { agent_command: image.command, agent_url: s.appUrl } : {}),
      ...config,
    },
    default_manifest: { entries: [], mounts: [] },
  });
  const volumeGet = (id: string) =>
    fetch(`${s.baseUrl}/apps/roder-vol/volumes/${id}`, { headers: { authorization: `Bearer ${s.token}` } });
  return { s, provider, destination, volumeGet };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe.each(["exec", "agent"] as const)("fly %s mode: the workspace on a volume", (mode) => {
  it("survives a stop/start (Fly's reset); the volume is created with the machine and deleted at close", async () => {
    const { s, provider, destination, volumeGet } = await setup();
    const session = await provider.createSession(
      destination(mode, { region: "ams", volume: { size_gb: 2, name: "work_vol" } }),
    );
    const state = session.state();
    const volumeId = (state.metadata as { volume_id?: string }).volume_id!;
    expect(volumeId).toMatch(/^vol_/);
    // The stand-in saw Fly's CreateVolumeRequest, and the machine mounts it at the workspace root.
    const created = s.bodies.find((b) => b.path === "/v1/apps/roder-vol/volumes")!.body as Record<
      string,
      unknown
    >;
    expect(created).toMatchObject({ name: "work_vol", region: "ams", size_gb: 2 });
    const machineBody = s.bodies.find((b) => b.path === "/v1/apps/roder-vol/machines")!.body as {
      config: { mounts?: unknown };
      region?: string;
    };
    expect(machineBody.region).toBe("ams");
    expect(machineBody.config.mounts).toEqual([{ volume: volumeId, path: "/workspace" }]);
    expect(s.volumes().map((v) => [v.id, v.attached_machine_id])).toEqual([[volumeId, state.session_id]]);

    await session.writeFile({ path: "src/keep.txt", contents: new TextEncoder().encode("kept") });
    await session.runCommand({ command_id: "tmp", program: "sh", args: ["-c", "echo gone > /tmp/scratch"] });
    // Fly stops the machine (host maintenance, an operator): the next start rebuilds its root filesystem.
    await s.stopMachine(state.session_id);
    const again = await provider.resumeSession(state);
    expect(text((await again.readFile({ path: "src/keep.txt" })).contents)).toBe("kept");
    const tmp = await again.runCommand({ command_id: "t2", program: "sh", args: ["-c", "cat /tmp/scratch"] });
    expect(tmp.exit_code).not.toBe(0);
    // The resumed session goes on, and its state resumes again.
    await again.writeFile({ path: "after.txt", contents: new TextEncoder().encode("2") });
    const third = await provider.resumeSession(again.state());
    expect(text((await third.readFile({ path: "after.txt" })).contents)).toBe("2");

    await third.close();
    expect(s.machines()).toEqual([]);
    expect(s.volumes()).toEqual([]);
    expect((await volumeGet(volumeId)).status).toBe(404);
  }, 180_000);

  it("without a volume, a resume after a reset is workspace_lost, and nothing is left", async () => {
    const { s, provider, destination } = await setup();
    const session = await provider.createSession(destination(mode));
    await session.writeFile({ path: "w.txt", contents: new TextEncoder().encode("x") });
    const state = session.state();
    await s.stopMachine(state.session_id);
    const e = await caught(provider.resumeSession(state));
    expect(FlyWorkspaceLostError.isInstance(e), String(e)).toBe(true);
    expect(RunnerError.isInstance(e) && e.code).toBe("workspace_lost");
    expect(s.machines()).toEqual([]);
  }, 120_000);

  it("a create that fails after the volume was made deletes it", async () => {
    const { s, provider, destination } = await setup();
    s.faults.failNextStart();
    const e = await caught(provider.createSession(destination(mode, { region: "ams", volume: {} })));
    expect(RunnerError.isInstance(e), String(e)).toBe(true);
    expect(s.machines()).toEqual([]);
    expect(s.volumes()).toEqual([]);
  }, 120_000);
});

describe("fly volume config", () => {
  it("is checked before anything is sent: a volume needs a region, Fly's name and size bounds", async () => {
    const { s, provider, destination } = await setup();
    for (const config of [
      { volume: { size_gb: 1 } },
      { region: "ams", volume: { size_gb: 0 } },
      { region: "ams", volume: { size_gb: 501 } },
      { region: "ams", volume: { name: "Bad-Name" } },
    ]) {
      const e = await caught(provider.validateDestination(destination("exec", config)));
      expect(InvalidDestinationConfigError.isInstance(e), JSON.stringify(config)).toBe(true);
    }
    expect(String(await caught(provider.validateDestination(destination("exec", { volume: {} }))))).toMatch(
      /region/,
    );
    expect(s.requests).toEqual([]);
  });
});

describe("fly agent mode", () => {
  it("derives the agent's token from the provider's secret: the state holds a nonce, another secret cannot resume", async () => {
    const { s, provider, destination } = await setup();
    const session = await provider.createSession(destination("agent"));
    try {
      const state = session.state();
      const meta = state.metadata as { agent_nonce: string; mode: string };
      expect(meta.mode).toBe("agent");
      const token = agentToken(SECRET, "roder-vol", meta.agent_nonce);
      // The machine's env carries the token (what serve reads); the state and its encoding do not.
      const machine = s.machines().find((m) => m.id === state.session_id)!;
      expect((machine.config as { env: Record<string, string> }).env.RODER_RUNNER_SERVER_TOKEN).toBe(token);
      expect(JSON.stringify(state)).not.toContain(token);
      expect(JSON.stringify(state)).not.toContain(SECRET);
      // The app has a service on the agent's port; the init is the agent.
      expect(
        (machine.config as { services: Array<{ internal_port: number }> }).services[0]!.internal_port,
      ).toBe(8080);
      expect((machine.config as { init: { cmd: string[] } }).init.cmd.slice(-11)).toEqual([
        "serve",
        "--port",
        "8080",
        "--host",
        "0.0.0.0",
        "--isolation",
        "none",
        "--host-is-sandbox",
        "--allow-host-paths",
        "--session-ttl",
        "0",
      ]);
      // A provider with another secret derives another token: the agent refuses it, typed, without the token.
      const other = createFlyProvider({
        baseUrl: s.baseUrl,
        env: { FLY_API_TOKEN: s.token, RODER_FLY_AGENT_SECRET: "another-secret-0000" },
      });
      const e = await caught(other.resumeSession(state));
      expect(ProviderApiError.isInstance(e) && e.statusCode, String(e)).toBe(401);
      expect(String(e)).not.toContain(token);
      // This one resumes, and no exec was ever sent.
      const again = await provider.resumeSession(state);
      expect((await again.runCommand({ command_id: "ok", program: "true" })).exit_code).toBe(0);
      expect(s.requests.filter((r) => r.path.endsWith("/exec"))).toEqual([]);
    } finally {
      await session.close();
    }
    expect(s.machines()).toEqual([]);
  }, 120_000);

  it("a machine Fly stops under a session: calls fail typed (no token in them), a resume is workspace_lost", async () => {
    const { s, provider, destination } = await setup();
    const session = await provider.createSession(destination("agent"));
    const state = session.state();
    const token = agentToken(SECRET, "roder-vol", (state.metadata as { agent_nonce: string }).agent_nonce);
    await s.stopMachine(state.session_id);
    for (const call of [
      session.runCommand({ command_id: "gone", program: "true" }),
      session.readFile({ path: "x" }),
    ]) {
      const e = await caught(call);
      expect(RunnerError.isInstance(e), String(e)).toBe(true);
      expect(`${String(e)} ${JSON.stringify(e)}`).not.toContain(token);
    }
    const lost = await caught(provider.resumeSession(state));
    expect(FlyWorkspaceLostError.isInstance(lost), String(lost)).toBe(true);
    await session.close();
    expect(s.machines()).toEqual([]);
  }, 120_000);

  it("copies manifest entries into the agent's workspace, read-only ones without write permission", async () => {
    const { s, provider, destination } = await setup();
    const src = mkdtempSync(join(tmpdir(), "fly-agent-entries-"));
    mkdirSync(join(src, "lib"));
    writeFileSync(join(src, "lib", "a.txt"), "A");
    writeFileSync(join(src, "notes.md"), "N");
    const d = destination("agent");
    d.default_manifest.entries = [
      { source: join(src, "lib"), target: "vendor/lib", writable: false },
      { source: join(src, "notes.md"), target: "/workspace/notes.md", writable: true },
    ];
    const session = await provider.createSession(d);
    try {
      expect(text((await session.readFile({ path: "vendor/lib/a.txt" })).contents)).toBe("A");
      expect(text((await session.readFile({ path: "notes.md" })).contents)).toBe("N");
      const modes = await session.runCommand({
        command_id: "modes",
        program: "stat",
        args: ["-c", "%A", "vendor/lib/a.txt", "notes.md"],
      });
      expect(
        modes.stdout
          .split("\n")
          .filter(Boolean)
          .map((m) => m.includes("w")),
      ).toEqual([false, true]);
    } finally {
      await session.close();
      rmSync(src, { recursive: true, force: true });
    }
    expect(s.machines()).toEqual([]);
  }, 120_000);

  it("defaults: agent when the image has the agent, exec otherwise; cmd is refused in agent mode", async () => {
    const { s, provider, destination } = await setup();
    const withAgent = destination("agent");
    delete (withAgent.config as Record<string, unknown>).mode;
    (withAgent.config as Record<string, unknown>).image_has_agent = true;
    const session = await provider.createSession(withAgent);
    expect((session.state().metadata as { mode?: string }).mode).toBe("agent");
    await session.close();
    const plain = destination("exec");
    delete (plain.config as Record<string, unknown>).mode;
    const execSession = await provider.createSession(plain);
    expect((execSession.state().metadata as { mode?: string }).mode).toBeUndefined();
    await execSession.close();
    const e = await caught(
      provider.validateDestination(destination("agent", { cmd: ["sleep", "infinity"] })),
    );
    expect(InvalidDestinationConfigError.isInstance(e), String(e)).toBe(true);
    expect(s.machines()).toEqual([]);
  }, 120_000);

  it("a command longer than the API edge's exec limit runs through the agent, with no exec", async () => {
    standIn = await startFlyStandIn({
      backend: createLocalProvider(),
      imageDirs: image.dirs,
      execRequestLimitMs: 1000,
    });
    const s = standIn;
    const provider = createFlyProvider({
      baseUrl: s.baseUrl,
      env: { FLY_API_TOKEN: s.token },
    });
    const session = await provider.createSession({
      id: "long",
      provider_id: "fly",
      config: {
        app: "roder-vol",
        image: "x",
        mode: "agent",
        agent_command: image.command,
        agent_url: s.appUrl,
      },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const r = await session.runCommand({
        command_id: "long",
        program: "sh",
        args: ["-c", "for i in 1 2 3; do echo line$i; sleep 1; done; exit 4"],
      });
      expect(r.exit_code).toBe(4);
      expect(r.stdout).toBe("line1\nline2\nline3\n");
      expect(s.execTimeouts).toBe(0);
      expect(s.requests.filter((x) => x.path.endsWith("/exec"))).toEqual([]);
    } finally {
      await session.close();
    }
  }, 120_000);
});
