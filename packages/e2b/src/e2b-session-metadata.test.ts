import { codecs, RunnerError, type RunnerSessionState } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseE2bConfig } from "./e2b-config.js";
import { createE2bProvider } from "./e2b-provider.js";
import { decodeE2bSessionMetadata, e2bSessionMetadata } from "./e2b-session-metadata.js";

// Session metadata is a versioned schema: what resumeSession reads is decoded, never cast. States written before
// the `version` field existed read as version 1 and still resume; anything else is a typed invalid_request.
const KEY = "e2b_meta_canary_5d1e";
let standIn: E2bStandIn;
beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
});
afterAll(async () => {
  await standIn?.stop();
});

const provider = () =>
  createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: { E2B_API_KEY: KEY },
  });
const config = parseE2bConfig({ template: "base" });
const mount = {
  name: "data",
  path: "/home/user/data",
  read_only: true,
  intent: { kind: "s3", uri: "s3://bucket/prefix/", credentials: { id: "s3-ro" } },
};

/** A state exactly as the code before versioned metadata wrote it (no `version`). */
function unversionedState(sandboxId: string, mounts: unknown[] = []): string {
  return JSON.stringify({
    provider_id: "e2b",
    session_id: sandboxId,
    destination_id: "dest-meta",
    snapshot: null,
    metadata: { sandbox_id: sandboxId, workspace_root: config.workspace_root, config, mounts, mounted: [] },
  });
}

/** The rejection of `p` (a resolved value fails the typed-error assertions that follow). */
const caught = (p: Promise<unknown>): Promise<unknown> => p.catch((error: unknown) => error);

describe("e2b session metadata", () => {
  it("writes version 1, otherwise the keys (and their order) the unversioned states had", () => {
    const m = e2bSessionMetadata({ sandboxId: "s1", config, mounts: [], mounted: [] });
    expect(Object.keys(m)).toEqual([
      "version",
      "sandbox_id",
      "workspace_root",
      "config",
      "mounts",
      "mounted",
    ]);
    expect(m.version).toBe(1);
  });

  it("reads an unversioned state with mounts (secret ids only) as version 1", () => {
    const meta = decodeE2bSessionMetadata(
      codecs.RunnerSessionState.decode(unversionedState("sb-1", [mount])),
    );
    expect(meta).toMatchObject({ version: 1, sandbox_id: "sb-1", mounts: [mount], mounted: [] });
    expect(meta.config).toEqual(config);
  });

  it("resumes a sandbox from a state file the unversioned code wrote; the resumed state says version 1", async () => {
    const session = await provider().createSession({ id: "dest-meta", config });
    try {
      await session.writeFile({ path: "kept.txt", contents: "still here" });
      expect((session.state().metadata as { version: number }).version).toBe(1);
      const old = codecs.RunnerSessionState.decode(unversionedState(session.state().session_id));
      const resumed = await provider().resumeSession(old);
      expect(new TextDecoder().decode((await resumed.readFile({ path: "kept.txt" })).contents)).toBe(
        "still here",
      );
      expect((await resumed.runCommand({ program: "cat", args: ["kept.txt"] })).stdout).toBe("still here");
      expect(resumed.state()).toEqual({ ...old, metadata: { version: 1, ...(old.metadata as object) } });
    } finally {
      await session.close();
    }
  });

  it("refuses a malformed or unknown state with a typed invalid_request before any API call", async () => {
    const good = JSON.parse(unversionedState("sb-none")) as RunnerSessionState & {
      metadata: Record<string, unknown>;
    };
    const bad: Array<[string, RunnerSessionState]> = [
      ["another provider", { ...good, provider_id: "fly" }],
      ["no metadata", { ...good, metadata: null }],
      ["sandbox_id not a string", { ...good, metadata: { ...good.metadata, sandbox_id: 7 } }],
      ["a later version", { ...good, metadata: { ...good.metadata, version: 2 } }],
      ["a config E2B refuses", { ...good, metadata: { ...good.metadata, config: { ttl_seconds: -1 } } }],
      ["mounts not a list", { ...good, metadata: { ...good.metadata, mounts: { name: "x" } } }],
      ["a mount without a path", { ...good, metadata: { ...good.metadata, mounts: [{ name: "x" }] } }],
    ];
    const before = standIn.requests.length;
    for (const [why, state] of bad) {
      const e = await caught(provider().resumeSession(state));
      expect(RunnerError.isInstance(e) && e.code, `${why}: ${String(e)}`).toBe("invalid_request");
      expect(String(e), why).toMatch(/not an e2b session state/);
    }
    expect(standIn.requests.length).toBe(before);
  });
});
