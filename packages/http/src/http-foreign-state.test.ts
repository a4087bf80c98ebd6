import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// Attacker's turn on the HTTP provider's inputs: a destination or a session state written for another provider,
// or a state whose metadata was tampered with, is refused typed before any request is made (before, the
// provider took them and cast-parsed the metadata: an untyped ZodError, or a call to wherever it pointed).
let root: string;
let server: RunnerServer;
let url: string;
const TOKEN = "http-foreign-state-token";

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "roder-http-foreign-"));
  server = createRunnerServer({
    provider: createLocalProvider({ root, registryDir: join(root, ".registry") }),
    token: TOKEN,
  });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

const codeOf = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  return RunnerError.isInstance(e) ? e.code : `not typed: ${String(e)}`;
};

describe("http provider: destinations and states of another provider, tampered metadata", () => {
  it("refuses them typed, and no session is created for them", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, token: TOKEN, env: {} });
    const destination = {
      id: "d",
      provider_id: "http",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    };
    const session = await provider.createSession(destination);
    const state = session.state();
    await session.close();
    const sessionsBefore = readdirSync(root).length;

    expect(await codeOf(provider.createSession({ ...destination, provider_id: "fly" }))).toBe(
      "invalid_destination_config",
    );
    expect(await codeOf(provider.resumeSession({ ...state, provider_id: "fly" }))).toBe("invalid_request");
    expect(await codeOf(provider.resumeSession({ ...state, metadata: { base_url: 42 } }))).toBe(
      "invalid_request",
    );
    // A state that names another server: the token is sent only to the configured one.
    const elsewhere = { ...(state.metadata as object), base_url: "http://127.0.0.1:9" };
    expect(await codeOf(provider.resumeSession({ ...state, metadata: elsewhere }))).toBe(
      "invalid_destination_config",
    );
    expect(readdirSync(root).length).toBe(sessionsBefore);
  });
});
