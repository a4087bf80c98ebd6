import { codecs, RunnerError, type RunnerSessionState } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFlyConfig } from "./fly-config.js";
import { createFlyProvider } from "./fly-provider.js";
import { decodeFlySessionMetadata, flySessionMetadata } from "./fly-session-metadata.js";

// Session metadata is a versioned schema: what resumeSession reads is decoded, never cast. States written before
// the `version` field existed read as version 1 and still resume; anything else is a typed invalid_request.
let standIn: FlyStandIn;
beforeAll(async () => {
  standIn = await startFlyStandIn({ backend: createLocalProvider() });
});
afterAll(async () => {
  await standIn?.stop();
});

const provider = () =>
  createFlyProvider({
    baseUrl: standIn.baseUrl,
    env: { FLY_API_TOKEN: standIn.token },
    retry: { baseDelayMs: 50, maxDelayMs: 2000 },
  });
const config = parseFlyConfig({ app: "roder-meta", image: "debian:bookworm-slim" });

/** A state exactly as the code before versioned metadata wrote it (exec mode: no mode, no version). */
function unversionedExecState(machineId: string, marker: string): string {
  return JSON.stringify({
    provider_id: "fly",
    session_id: machineId,
    destination_id: "dest-meta",
    snapshot: null,
    metadata: {
      machine_id: machineId,
      app: config.app,
      workspace_root: config.workspace_root,
      config,
      mounted: [],
      marker,
    },
  });
}

/** The rejection of `p` (a resolved value fails the typed-error assertions that follow). */
const caught = (p: Promise<unknown>): Promise<unknown> => p.catch((error: unknown) => error);

describe("fly session metadata", () => {
  it("writes version 1, otherwise the keys (and their order) the unversioned states had", () => {
    const exec = flySessionMetadata({
      machineId: "m1",
      config,
      workspaceRoot: "/workspace",
      mounted: [{ path: "/workspace/b", rc: null }],
      marker: "abc",
      volumeId: "vol_1",
    });
    expect(Object.keys(exec)).toEqual([
      "version",
      "machine_id",
      "app",
      "workspace_root",
      "config",
      "mounted",
      "marker",
      "volume_id",
    ]);
    expect(exec.version).toBe(1);
    const agent = flySessionMetadata({
      machineId: "m2",
      config,
      workspaceRoot: "/workspace/s1",
      mounted: [],
      agent: { sessionId: "s1", nonce: "n1" },
    });
    expect(Object.keys(agent)).toEqual([
      "version",
      "mode",
      "machine_id",
      "app",
      "workspace_root",
      "config",
      "agent_session_id",
      "agent_nonce",
      "mounted",
    ]);
  });

  it("reads an unversioned agent-mode state as version 1", () => {
    const state = codecs.RunnerSessionState.decode(
      JSON.stringify({
        provider_id: "fly",
        session_id: "m9",
        destination_id: "d",
        snapshot: null,
        metadata: {
          mode: "agent",
          machine_id: "m9",
          app: config.app,
          workspace_root: "/workspace/sess-1",
          config: { ...config, mode: "agent" },
          agent_session_id: "sess-1",
          agent_nonce: "00ff",
          mounted: [{ path: "/workspace/bucket", rc: "127.0.0.1:5572" }],
          volume_id: "vol_9",
        },
      }),
    );
    const meta = decodeFlySessionMetadata(state);
    expect(meta).toMatchObject({
      version: 1,
      mode: "agent",
      machine_id: "m9",
      agent_session_id: "sess-1",
      agent_nonce: "00ff",
      volume_id: "vol_9",
      mounted: [{ path: "/workspace/bucket", rc: "127.0.0.1:5572" }],
    });
  });

  it("resumes a session from a state file the unversioned code wrote; the resumed state says version 1", async () => {
    const session = await provider().createSession({ id: "dest-meta", config });
    try {
      await session.writeFile({ path: "kept.txt", contents: "still here" });
      const written = session.state().metadata as { marker: string; version: number };
      expect(written.version).toBe(1);
      const old = codecs.RunnerSessionState.decode(
        unversionedExecState(session.state().session_id, written.marker),
      );
      const resumed = await provider().resumeSession(old);
      expect(new TextDecoder().decode((await resumed.readFile({ path: "kept.txt" })).contents)).toBe(
        "still here",
      );
      expect((await resumed.runCommand({ program: "cat", args: ["kept.txt"] })).stdout).toBe("still here");
      expect(resumed.state()).toEqual({ ...old, metadata: { version: 1, ...(old.metadata as object) } });
      // A wrong marker is still told from a machine whose workspace is gone (the field is read, not ignored).
      const wrong = codecs.RunnerSessionState.decode(
        unversionedExecState(session.state().session_id, "0000"),
      );
      const lost = await caught(provider().resumeSession(wrong));
      expect(RunnerError.isInstance(lost) && lost.code).toBe("workspace_lost");
    } finally {
      await session.close();
    }
  });

  it("refuses a malformed or unknown state with a typed invalid_request before any API call", async () => {
    const good = JSON.parse(unversionedExecState("m-none", "x")) as RunnerSessionState & {
      metadata: Record<string, unknown>;
    };
    const bad: Array<[string, RunnerSessionState]> = [
      ["another provider", { ...good, provider_id: "e2b" }],
      ["no metadata", { ...good, metadata: null }],
      ["machine_id not a string", { ...good, metadata: { ...good.metadata, machine_id: 7 } }],
      ["a later version", { ...good, metadata: { ...good.metadata, version: 2 } }],
      ["a config Fly refuses", { ...good, metadata: { ...good.metadata, config: { app: "a" } } }],
      ["mounted not a list", { ...good, metadata: { ...good.metadata, mounted: "x" } }],
      ["agent mode without its nonce", { ...good, metadata: { ...good.metadata, mode: "agent" } }],
    ];
    const before = standIn.requests.length;
    for (const [why, state] of bad) {
      const e = await caught(provider().resumeSession(state));
      expect(RunnerError.isInstance(e) && e.code, `${why}: ${String(e)}`).toBe("invalid_request");
      expect(String(e), why).toMatch(/not a fly (agent )?session state/);
    }
    expect(standIn.requests.length).toBe(before);
  });
});
