import { join } from "node:path";
import { CommandNotFoundError, codecs, type RunnerSessionState } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, runScript, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

let standIn: E2bStandIn;

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
});
afterAll(async () => {
  await standIn.stop();
});

describe("e2b: reattaching a command after the client crashed (envd Connect)", () => {
  it("the command outlives a SIGKILLed client; a new process finds it by id and follows it to the end", async () => {
    const env = {
      E2B_API_KEY: standIn.apiKey,
      E2B_API_URL: standIn.apiUrl,
      E2B_SANDBOX_URL: standIn.sandboxUrl,
      E2B_DOMAIN: standIn.domain,
    };
    const run = await runScript(join(import.meta.dirname, "__fixtures__/start-and-crash.ts"), { env });
    expect(run.signal, run.stderr).toBe("SIGKILL");
    const saved = JSON.parse(run.stdout.trim().split("\n").pop()!) as { state: unknown; command_id: string };
    const state: RunnerSessionState = codecs.RunnerSessionState.decode(JSON.stringify(saved.state));
    const session = await createE2bProvider({ env }).resumeSession(state);
    const handle = await session.attachCommand!(saved.command_id);
    await session.writeFile({ path: "go", contents: new Uint8Array() });
    let seen = "";
    for await (const chunk of handle.output) seen += new TextDecoder().decode(chunk.data);
    const result = await handle.wait();
    expect(result.exit_code).toBe(0);
    // envd does not replay: what came before the attach is not seen again.
    expect(seen).toBe("two\nthree\n");
    expect(new TextDecoder().decode((await session.readFile({ path: "finished.txt" })).contents)).toBe(
      "done\n",
    );
    // Ended processes are forgotten by envd: a typed error, not a hang.
    const e = await session.attachCommand!(saved.command_id).catch((x: unknown) => x);
    expect(CommandNotFoundError.isInstance(e), String(e)).toBe(true);
    await session.close();
    expect(standIn.sandboxes()).toEqual([]);
  }, 60_000);

  it("kill from another client stops a command it did not start", async () => {
    const env = { E2B_API_KEY: standIn.apiKey };
    const opts = { apiUrl: standIn.apiUrl, sandboxUrl: standIn.sandboxUrl, domain: standIn.domain, env };
    const a = await createE2bProvider(opts).createSession({
      id: "k",
      provider_id: "e2b",
      config: { template: "base" },
      default_manifest: { entries: [], mounts: [] },
    });
    const h = await a.startCommand!({
      command_id: "sleeper",
      program: "sh",
      args: ["-c", "sleep 2; echo x > late.txt"],
    });
    const b = await createE2bProvider(opts).resumeSession(a.state());
    expect(await b.cancelCommand("sleeper")).toBe(true);
    const r = await h.wait();
    expect(r.exit_code).toBeNull();
    await new Promise((res) => setTimeout(res, 2300));
    const names = (await a.runCommand({ command_id: "ls", program: "ls" })).stdout.split("\n");
    expect(names).not.toContain("late.txt");
    await a.close();
  }, 30_000);
});

describe("e2b pause", () => {
  it("pauses the sandbox itself (E2B pause), and resumeSession resumes it with a running command's output", async () => {
    const opts = {
      apiUrl: standIn.apiUrl,
      sandboxUrl: standIn.sandboxUrl,
      domain: standIn.domain,
      env: { E2B_API_KEY: standIn.apiKey },
    };
    const s = await createE2bProvider(opts).createSession({
      id: "p",
      provider_id: "e2b",
      config: { template: "base" },
      default_manifest: { entries: [], mounts: [] },
    });
    const id = s.state().session_id;
    await s.pause!();
    expect(standIn.sandboxes().find((x) => x.sandboxID === id)?.state).toBe("paused");
    const again = await createE2bProvider(opts).resumeSession(s.state());
    expect(standIn.sandboxes().find((x) => x.sandboxID === id)?.state).toBe("running");
    expect((await again.runCommand({ command_id: "e", program: "echo", args: ["back"] })).stdout).toBe(
      "back\n",
    );
    await again.close();
    await s.close();
    expect(standIn.sandboxes()).toEqual([]);
  }, 30_000);
});
