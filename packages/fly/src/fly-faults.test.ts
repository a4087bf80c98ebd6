import { CancelledError, ProviderApiError, RunnerError, SessionNotFoundError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

const TOKEN = "fly-token-canary-77aa01";
let standIn: FlyStandIn;
const retries: string[] = [];
const provider = () =>
  createFlyProvider({
    baseUrl: standIn.baseUrl,
    env: { FLY_API_TOKEN: TOKEN },
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
    onRetry: (op, n) => retries.push(`${op}#${n}`),
  });
const destination = {
  id: "d",
  provider_id: "fly",
  config: { app: "roder-test", image: "debian:bookworm-slim" },
  default_manifest: { entries: [], mounts: [] },
};

beforeAll(async () => {
  standIn = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN });
});
afterEach(() => {
  standIn.faults.clear();
  retries.length = 0;
});
afterAll(async () => {
  await standIn.stop();
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

describe("fly provider under faults", () => {
  it("waits for Retry-After on 429 and recovers, even for exec", async () => {
    const s = await provider().createSession(destination);
    standIn.faults.set({ status: 429, retryAfterSeconds: 1, times: 2, match: /POST .*\/exec$/ });
    const started = Date.now();
    const r = await s.runCommand({ command_id: "c", program: "echo", args: ["ok"] });
    expect(r.stdout).toBe("ok\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(retries).toEqual(["run command#1", "run command#2"]);
    await s.close();
  });

  it("retries idempotent calls on 5xx and connection resets; a command whose start failed runs exactly once", async () => {
    standIn.faults.set({ status: 503, times: 2, match: /GET .*\/wait$/ });
    standIn.faults.set({ resetConnection: true, times: 1, match: /GET .*\/wait$/ });
    const s = await provider().createSession(destination);
    try {
      expect(retries.filter((r) => r.startsWith("wait for machine"))).toHaveLength(3);
      // A 500 or a reset on the start says nothing about whether it ran: the provider looks in the machine
      // (the command's directory) and starts it again only if it never started. Never blind retries.
      for (const fault of [{ status: 500 }, { resetConnection: true }]) {
        standIn.faults.set({ ...fault, times: 1, match: /POST .*\/exec$/ });
        const r = await s.runCommand({ command_id: "c", program: "sh", args: ["-c", "echo x >> runs.txt"] });
        expect(r.exit_code).toBe(0);
      }
      expect(new TextDecoder().decode((await s.readFile({ path: "runs.txt" })).contents)).toBe("x\nx\n");
      expect(retries.filter((r) => r.startsWith("run command"))).toHaveLength(0);
    } finally {
      await s.close();
    }
    expect(standIn.machines()).toHaveLength(0);
  });

  it("honours an AbortSignal on a slow response", async () => {
    const s = await provider().createSession(destination);
    standIn.faults.set({ delayMs: 3000, match: /POST .*\/exec$/ });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const started = Date.now();
    const e = await caught(s.runCommand({ command_id: "c", program: "true" }, { signal: ac.signal }));
    expect(CancelledError.isInstance(e)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500);
    await s.close();
  });

  it("destroys a machine that fails to start and leaves nothing running", async () => {
    standIn.faults.failNextStart();
    const e = await caught(provider().createSession(destination));
    expect(RunnerError.isInstance(e)).toBe(true);
    expect((e as Error).message).toMatch(/failed to start|failed/);
    expect(standIn.machines()).toHaveLength(0);
  });

  it("fails cleanly when create is reset, and when the caller aborts mid-create", async () => {
    standIn.faults.set({ resetConnection: true, match: /POST \/v1\/apps\/roder-test\/machines$/ });
    expect(ProviderApiError.isInstance(await caught(provider().createSession(destination)))).toBe(true);
    expect(standIn.machines()).toHaveLength(0);
    standIn.faults.set({ delayMs: 1500, match: /GET .*\/wait$/ });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    expect(
      CancelledError.isInstance(await caught(provider().createSession(destination, { signal: ac.signal }))),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(standIn.machines()).toHaveLength(0);
  });

  it("surfaces 4xx as typed errors with the API's message and no token", async () => {
    const bad = createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: { FLY_API_TOKEN: "wrong-token-value-1234" },
    });
    const e = await caught(bad.createSession(destination));
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(401);
    expect(String((e as Error).message)).toContain("unauthorized");
    expect(JSON.stringify({ m: (e as Error).message, s: (e as Error).stack })).not.toContain(
      "wrong-token-value-1234",
    );
    const none = createFlyProvider({ baseUrl: standIn.baseUrl, env: {} });
    expect(((await caught(none.createSession(destination))) as Error).message).toContain("FLY_API_TOKEN");
    expect(none.setupHint()).toContain("FLY_API_TOKEN");
  });

  it("refuses a token in the destination config", async () => {
    const e = await caught(
      provider().validateDestination({
        ...destination,
        config: { ...destination.config, api_token: "x1234567" },
      }),
    );
    expect((e as Error).message).toContain("FLY_API_TOKEN");
  });

  it("sends the Machines API's documented shapes", async () => {
    standIn.bodies.length = 0;
    const s = await provider().createSession(destination);
    await s.runCommand({
      command_id: "c",
      program: "printf",
      args: ["%s", "a b"],
      env: [["K", "V"]],
      timeout_ms: 5000,
    });
    const create = standIn.bodies.find((b) => /\/machines$/.test(b.path))!.body as {
      config: Record<string, unknown>;
    };
    expect(create.config.image).toBe("debian:bookworm-slim");
    expect(create.config.metadata).toMatchObject({ roder_owner: "roder-runners", roder_destination: "d" });
    expect(Date.parse((create.config.metadata as Record<string, string>).roder_expires_at!)).toBeGreaterThan(
      Date.now(),
    );
    const exec = standIn.bodies.filter((b) => b.path.endsWith("/exec")).at(-1)!.body as {
      command: string[];
      timeout: number;
      stdin: string;
    };
    expect(Array.isArray(exec.command)).toBe(true);
    // argv and env travel on stdin: no user byte on the exec's command line.
    expect(exec.command).not.toContain("printf");
    expect(exec.command).not.toContain("a b");
    expect(exec.stdin).toMatch(/^<\d+ chars>$/);
    // The exec is held at most exec_hold_s (20 s) in the machine, its own timeout a little longer.
    expect(exec.timeout).toBe(30);
    expect(JSON.stringify(standIn.bodies)).not.toContain(TOKEN);
    await s.close();
    expect(SessionNotFoundError.isInstance(await caught(provider().resumeSession(s.state())))).toBe(true);
  });
});

describe("observer events count the retries made inside an operation", () => {
  it("a readFile that met two 429s reports retries: 2; a clean one reports 0", async () => {
    const { withObserver } = await import("@roder/runner-contract");
    const events: Array<{ operation: string; retries: number; outcome: string }> = [];
    const observed = withObserver(provider(), (e) => events.push(e));
    const s = await observed.createSession(destination);
    await s.writeFile({ path: "r.txt", contents: new TextEncoder().encode("x") });
    standIn.faults.set({ status: 429, retryAfterSeconds: 0, times: 2, match: /POST .*\/exec$/ });
    expect(new TextDecoder().decode((await s.readFile({ path: "r.txt" })).contents)).toBe("x");
    await s.readFile({ path: "r.txt" });
    await s.close();
    const reads = events.filter((e) => e.operation === "readFile");
    expect(reads.map((e) => [e.outcome, e.retries])).toEqual([
      ["ok", 2],
      ["ok", 0],
    ]);
    expect(events.find((e) => e.operation === "createSession")!.retries).toBe(0);
  }, 60_000);
});

describe("fly pause (suspend)", () => {
  it("suspends the machine itself, refuses calls meanwhile, and resumeSession starts it again with its files", async () => {
    const s = await provider().createSession(destination);
    await s.writeFile({ path: "kept.txt", contents: new TextEncoder().encode("kept") });
    const id = s.state().session_id;
    await s.pause!();
    expect(standIn.machines().find((m) => m.id === id)?.state).toBe("suspended");
    const e = await caught(s.readFile({ path: "kept.txt" }));
    expect(RunnerError.isInstance(e) && e.code === "session_paused", String(e)).toBe(true);
    const again = await provider().resumeSession(s.state());
    expect(standIn.machines().find((m) => m.id === id)?.state).toBe("started");
    expect(new TextDecoder().decode((await again.readFile({ path: "kept.txt" })).contents)).toBe("kept");
    await again.close();
    await s.close();
    expect(standIn.machines().filter((m) => m.state !== "destroyed")).toEqual([]);
  }, 60_000);
});
