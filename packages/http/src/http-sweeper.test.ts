import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  type RemoteRunnerProvider,
  type RunnerDestination,
  SessionNotFoundError,
  sweepExpiredSessions,
} from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { runScript } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";
import { createHttpSweeper } from "./http-sweeper.js";

const TOKEN = "sweeper-test-token-0123456789";
const repo = resolve(import.meta.dirname, "../../..");
let root: string;
let server: RunnerServer;
let url: string;
/** Sessions the backend finished creating. */
let created = 0;

/** The local backend, with `createSession` held back by `delayMs` (a slow cloud create). */
function backend(delayMs = 0): RemoteRunnerProvider {
  const local = createLocalProvider({ root, registryDir: join(root, ".registry") });
  return {
    ...local,
    async createSession(d, o) {
      await new Promise((r) => setTimeout(r, delayMs));
      const s = await local.createSession(d, o);
      created++;
      return s;
    },
  };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "roder-http-sweep-"));
  server = createRunnerServer({ provider: backend(), token: TOKEN, reapIntervalMs: 100 });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

const dest = (ttl: number): RunnerDestination => ({
  id: "d",
  provider_id: "http",
  config: { ttl_seconds: ttl },
  default_manifest: { entries: [], mounts: [] },
});
const provider = (owner: string, baseUrl = url) =>
  createHttpRunnerProvider({ baseUrl, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN }, owner });
const workspaces = () => readdirSync(root).filter((n) => /^local-[0-9a-f-]+$/.test(n));
const hostRoot = (s: { state(): { metadata: unknown } }) =>
  (s.state().metadata as { workspace_root: string }).workspace_root;

async function crashingCaller(env: Record<string, string>): Promise<void> {
  const run = await runScript("packages/http/src/__fixtures__/crash-mid-create.ts", {
    cwd: repo,
    env: { RODER_RUNNER_HTTP_TOKEN: TOKEN, ...env },
  });
  expect(run.signal, run.stderr).toBe("SIGKILL");
  expect(run.stderr).toBe("");
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; )
    await new Promise((r) => setTimeout(r, 50));
  expect(cond()).toBe(true);
}

describe("http sweeper", () => {
  it("finds and removes the session a SIGKILLed caller left, and only its owner's expired ones", async () => {
    const other = await provider("someone-else").createSession(dest(3600));
    const live = await provider("crashy").createSession(dest(3600));
    const before = new Set(workspaces());
    await crashingCaller({ RODER_RUNNER_HTTP_URL: url, OWNER: "crashy", TTL_SECONDS: "60" });
    const leaked = workspaces().filter((n) => !before.has(n));
    expect(leaked).toHaveLength(1);
    expect(server.sessionCount()).toBe(3);

    const sweeper = createHttpSweeper({ baseUrl: url, token: TOKEN });
    const found = await sweeper.listOwnedSessions({ owner: "crashy" });
    expect(found.map((s) => s.state)).toEqual(["running", "running"]);
    const leakedId = found.find((s) => s.session_id !== live.state().session_id)!;
    expect(Date.parse(leakedId.expires_at!) - Date.now()).toBeGreaterThan(30_000);

    // Not expired yet: kept. Two minutes later the leak (ttl 60 s) is due; the live one (ttl 1 h) is not.
    expect((await sweepExpiredSessions(sweeper, { owner: "crashy" })).removed).toEqual([]);
    const result = await sweepExpiredSessions(sweeper, {
      owner: "crashy",
      now: new Date(Date.now() + 120_000),
    });
    expect(result.errors).toEqual([]);
    expect(result.removed).toEqual([leakedId.session_id]);
    expect(server.sessionCount()).toBe(2);
    expect(existsSync(join(root, leaked[0]!))).toBe(false);

    // Another owner's session and the live one are untouched and still work.
    for (const s of [other, live]) {
      expect(existsSync(hostRoot(s))).toBe(true);
      const r = await s.runCommand({ command_id: "e", program: "echo", args: ["ok"], timeout_ms: 10_000 });
      expect(r.stdout).toBe("ok\n");
    }
    expect((await sweeper.listOwnedSessions({ owner: "someone-else" })).map((s) => s.session_id)).toEqual([
      other.state().session_id,
    ]);
    await sweeper.destroySession(leakedId.session_id); // already gone: a no-op
    await other.close();
    await live.close();
  }, 60_000);

  it("closes a session whose caller died during POST /sessions (nobody can learn its id)", async () => {
    const slow = createRunnerServer({ provider: backend(1500), token: TOKEN });
    const slowUrl = (await slow.listen(0)).url;
    const before = new Set(workspaces());
    const n = created;
    await crashingCaller({ RODER_RUNNER_HTTP_URL: slowUrl, OWNER: "crashy", CRASH_AFTER_MS: "700" });
    // The backend finishes the create after the caller died; the server then closes it at once.
    await until(() => created === n + 1);
    await until(() => workspaces().every((n) => before.has(n)));
    expect(slow.sessionCount()).toBe(0);
    expect(
      await createHttpSweeper({ baseUrl: slowUrl, token: TOKEN }).listOwnedSessions({ owner: "crashy" }),
    ).toEqual([]);
    await slow.close();
  }, 30_000);

  it("the server's reaper closes an expired session and leaves the others", async () => {
    const short = await provider("reaped").createSession(dest(1));
    const long = await provider("reaped").createSession(dest(3600));
    const sweeper = createHttpSweeper({ baseUrl: url, token: TOKEN });
    expect(await sweeper.listOwnedSessions({ owner: "reaped" })).toHaveLength(2);
    await until(() => !existsSync(hostRoot(short)));
    const left = await sweeper.listOwnedSessions({ owner: "reaped" });
    expect(left.map((s) => s.session_id)).toEqual([long.state().session_id]);
    const gone = await short
      .runCommand({ command_id: "x", program: "true", args: [], timeout_ms: 5_000 })
      .catch((e) => e);
    expect(SessionNotFoundError.isInstance(gone)).toBe(true);
    expect(existsSync(hostRoot(long))).toBe(true);
    await long.close();
  }, 30_000);

  it("answers GET /sessions only with the token and an owner", async () => {
    expect((await fetch(`${url}/sessions?owner=x`)).status).toBe(401);
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await fetch(`${url}/sessions`, { headers: auth })).status).toBe(400);
    const ok = await fetch(`${url}/sessions?owner=nobody`, { headers: auth });
    expect(await ok.json()).toEqual({ sessions: [] });
    const refused = await createHttpSweeper({ baseUrl: url, token: "wrong-token-000000000000" })
      .listOwnedSessions({ owner: "x" })
      .catch((e) => e);
    expect((refused as Error).message).toContain("RODER_RUNNER_HTTP_TOKEN");
  });
});
