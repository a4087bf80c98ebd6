import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CommandNotFoundError, codecs, type RunnerSessionState } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { runScript } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "reattach-token-5e2b";
const here = dirname(fileURLToPath(import.meta.url));
let server: RunnerServer;
let url = "";

beforeAll(async () => {
  server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
});

describe("reattaching a command after the client crashed", () => {
  it("a command outlives a SIGKILLed client and a new process attaches to it, output replayed", async () => {
    const run = await runScript(join(here, "__fixtures__/start-and-crash.ts"), {
      env: { RUNNER_URL: url, RODER_RUNNER_HTTP_TOKEN: TOKEN },
    });
    expect(run.signal, run.stderr).toBe("SIGKILL");
    const saved = JSON.parse(run.stdout.trim().split("\n").pop()!) as { state: unknown; command_id: string };
    // What the dead client persisted is all the new one has.
    const state: RunnerSessionState = codecs.RunnerSessionState.decode(JSON.stringify(saved.state));
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const session = await provider.resumeSession(state);
    const handle = await session.attachCommand!(saved.command_id);
    let seen = "";
    for await (const chunk of handle.output) seen += new TextDecoder().decode(chunk.data);
    const result = await handle.wait();
    expect(result.exit_code).toBe(0);
    expect(seen).toBe("one\ntwo\nthree\n");
    expect(result.stdout).toBe("one\ntwo\nthree\n");
    // It ran to its end: the client's death did not cancel it.
    expect(new TextDecoder().decode((await session.readFile({ path: "finished.txt" })).contents)).toBe(
      "done\n",
    );
    // Attaching after the end still answers (the backend keeps recent commands), and an unknown id is typed.
    const late = await session.attachCommand!(saved.command_id);
    expect((await late.wait()).stdout).toBe("one\ntwo\nthree\n");
    const e = await session.attachCommand!("no-such-command").catch((x: unknown) => x);
    expect(CommandNotFoundError.isInstance(e), String(e)).toBe(true);
    await session.close();
    expect(server.sessionCount()).toBe(0);
  }, 60_000);

  it("an aborted start cancels the command on the server; a detached one keeps running", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const session = await provider.createSession({
      id: "abort",
      provider_id: "http",
      config: { backend_config: { isolation: "none" } },
      default_manifest: { entries: [], mounts: [] },
    });
    const ac = new AbortController();
    const cancelled = await session.startCommand!(
      { command_id: "c1", program: "sh", args: ["-c", "sleep 1.5; echo x > cancelled.txt"] },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 200);
    await cancelled.wait().catch(() => undefined);
    const detached = await session.startCommand!({
      command_id: "c2",
      program: "sh",
      args: ["-c", "sleep 1.5; echo x > detached.txt"],
    });
    await detached.detach!();
    expect((await detached.wait()).exit_code).toBe(0);
    const names = (await session.runCommand({ command_id: "ls", program: "ls" })).stdout.split("\n");
    expect(names).toContain("detached.txt");
    expect(names).not.toContain("cancelled.txt");
    await session.close();
  }, 30_000);
});

describe("examples/reattach.ts", () => {
  it("runs as documented: the second client sees every step and the exit code", async () => {
    const { code, stdout: out, stderr } = await runScript(join(here, "../examples/reattach.ts"));
    expect(code, stderr).toBe(0);
    expect(out).toContain("client 1 saw: step 1");
    for (const i of [1, 2, 3, 4]) expect(out).toContain(`client 2 saw: step ${i}`);
    expect(out.trim().endsWith("exit 0")).toBe(true);
  }, 60_000);
});
