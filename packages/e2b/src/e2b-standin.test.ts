import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { CommandExitError, Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let standIn: E2bStandIn;
const opts = () => ({
  apiKey: standIn.apiKey,
  apiUrl: standIn.apiUrl,
  sandboxUrl: standIn.sandboxUrl,
  domain: standIn.domain,
});

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
});
afterAll(async () => {
  await standIn.stop();
});

describe("E2B stand-in driven by the unmodified e2b SDK", () => {
  it("creates a sandbox, runs commands (streaming, exit errors), moves files, lists by metadata and kills", async () => {
    const sbx = await Sandbox.create("base", { ...opts(), metadata: { roder_owner: "t1" } });
    try {
      const chunks: string[] = [];
      const ok = await sbx.commands.run("echo hello; echo oops >&2", {
        onStdout: (d) => void chunks.push(d),
      });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toBe("hello\n");
      expect(ok.stderr).toBe("oops\n");
      expect(chunks.join("")).toBe("hello\n");
      const err = await sbx.commands.run("exit 7").catch((e) => e);
      expect(err).toBeInstanceOf(CommandExitError);
      expect((err as CommandExitError).exitCode).toBe(7);
      const pwd = await sbx.commands.run("pwd", { cwd: "/home/user" });
      expect(pwd.stdout.trim()).toBe("/home/user");
      await sbx.files.write("/home/user/data/a.bin", new Uint8Array([0, 1, 2, 255]).buffer as ArrayBuffer);
      expect([...(await sbx.files.read("/home/user/data/a.bin", { format: "bytes" }))]).toEqual([
        0, 1, 2, 255,
      ]);
      await sbx.files.rename("/home/user/data/a.bin", "/home/user/data/b.bin");
      expect(await sbx.files.exists("/home/user/data/b.bin")).toBe(true);
      const list = await Sandbox.list({ ...opts(), query: { metadata: { roder_owner: "t1" } } }).nextItems();
      expect(list.map((s) => s.sandboxId)).toContain(sbx.sandboxId);
      const bg = await sbx.commands.run("sleep 30", { background: true });
      expect(await sbx.commands.kill(bg.pid)).toBe(true);
      const killed = await bg.wait().catch((e) => e);
      expect((killed as CommandExitError).exitCode).not.toBe(0);
    } finally {
      await sbx.kill();
    }
    expect(standIn.sandboxes()).toHaveLength(0);
  });

  it("pauses and resumes through connect", async () => {
    const sbx = await Sandbox.create("base", opts());
    await sbx.files.write("/home/user/keep.txt", "kept");
    await sbx.pause();
    expect(standIn.sandboxes()[0]?.state).toBe("paused");
    const again = await Sandbox.connect(sbx.sandboxId, opts());
    expect(await again.files.read("/home/user/keep.txt")).toBe("kept");
    await again.kill();
  });

  it("rejects a wrong API key with the SDK's authentication error", async () => {
    const e = await Sandbox.create("base", { ...opts(), apiKey: "e2b_wrong" }).catch((x) => x);
    expect((e as Error).name).toMatch(/Authentication/);
  });
});

/** Waits (bounded by the test's timeout) until `cond` holds: for events the stand-in's own clock drives. */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 100));
}

describe("the E2B stand-in behaves as E2B by default", () => {
  it("kills a sandbox when its timeout passes, whatever it runs: streams end, envd 502, control plane 404", async () => {
    const sbx = await Sandbox.create("base", { ...opts(), timeoutMs: 2000 });
    const id = sbx.sandboxId;
    const running = await sbx.commands.run("sleep 60", { background: true });
    await until(() => standIn.timedOut.includes(id));
    // The command's stream ends with the SDK's "sandbox gone" error, found through /health.
    const ended = await running.wait().catch((e: unknown) => e);
    expect((ended as Error).name).toBe("TimeoutError");
    expect((ended as Error).message).toMatch(/killed or reached its end of life/);
    expect(standIn.sandboxes().map((s) => s.sandboxID)).not.toContain(id);
    // envd answers E2B's edge body for every path, /health included.
    for (const path of ["/health", "/files?path=/home/user/x", "/process.Process/List"]) {
      const r = await fetch(`${standIn.sandboxUrl}${path}`, {
        method: path.startsWith("/process") ? "POST" : "GET",
        headers: { "E2b-Sandbox-Id": id, "content-type": "application/json" },
        ...(path.startsWith("/process") ? { body: "{}" } : {}),
      });
      expect(r.status, path).toBe(502);
      expect(await r.json(), path).toEqual({
        sandboxId: id,
        message: "The sandbox was not found",
        code: 502,
      });
    }
    const again = await sbx.commands.run("true").catch((e: unknown) => e);
    expect((again as Error).message).toMatch(/sandbox timeout|not running anymore|was not found/i);
    const info = await Sandbox.getInfo(id, opts()).catch((e: unknown) => e);
    expect((info as Error).name).toBe("SandboxNotFoundError");
    const raw = await fetch(`${standIn.apiUrl}/sandboxes/${id}`, {
      headers: { "X-API-KEY": standIn.apiKey },
    });
    expect(raw.status).toBe(404);
    expect(((await raw.json()) as { message: string }).message).toBe(
      `Sandbox "${id}" doesn't exist or you don't have access to it`,
    );
  }, 30_000);

  it("setTimeout moves the end (and keeps the sandbox past its first timeout); connect without a timeout sets 300 s", async () => {
    const sbx = await Sandbox.create("base", { ...opts(), timeoutMs: 2000 });
    await sbx.setTimeout(600_000);
    const before = Date.now();
    const end = (await sbx.getInfo()).endAt.getTime();
    expect(end).toBeGreaterThan(before + 500_000);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await sbx.commands.run("echo alive")).stdout).toBe("alive\n");
    // A running sandbox's end only moves later through connect (the SDK sends 300 s: less than 600 s).
    await Sandbox.connect(sbx.sandboxId, opts());
    expect((await sbx.getInfo()).endAt.getTime()).toBe(end);
    // A shorter setTimeout is exact (E2B allows shortening).
    await sbx.setTimeout(1000);
    await until(() => standIn.timedOut.includes(sbx.sandboxId));
    // A paused sandbox resumed by connect without a timeout gets 300 s.
    const p = await Sandbox.create("base", { ...opts(), timeoutMs: 3_000_000 });
    await p.pause();
    const resumedAt = Date.now();
    const resumed = await Sandbox.connect(p.sandboxId, opts());
    const resumedEnd = (await resumed.getInfo()).endAt.getTime();
    expect(resumedEnd).toBeGreaterThanOrEqual(resumedAt + 299_000);
    expect(resumedEnd).toBeLessThanOrEqual(Date.now() + 300_000);
    await resumed.kill();
  }, 30_000);

  it("refuses unknown templates (404) and timeouts over the plan (400); never extends past the plan's maximum length", async () => {
    const unknown = await Sandbox.create("no-such-template", opts()).catch((e: unknown) => e);
    expect((unknown as Error).message).toContain("template 'no-such-template' not found");
    expect((unknown as { statusCode?: number }).statusCode).toBe(404);
    const long = await Sandbox.create("base", { ...opts(), timeoutMs: 2 * 3600_000 }).catch(
      (e: unknown) => e,
    );
    expect((long as Error).message).toContain("Timeout cannot be greater than 1 hours");
    expect((long as { statusCode?: number }).statusCode).toBe(400);
    const sbx = await Sandbox.create("base", { ...opts(), timeoutMs: 600_000 });
    const c = await Sandbox.connect(sbx.sandboxId, { ...opts(), timeoutMs: 3 * 3600_000 }).catch((e) => e);
    expect((c as Error).message).toContain("Timeout cannot be greater than 1 hours");
    // setTimeout past the plan's length is capped at start + maximum.
    await sbx.setTimeout(3 * 3600_000);
    const info = await sbx.getInfo();
    expect(info.endAt.getTime()).toBe(info.startedAt.getTime() + 3600_000);
    await sbx.kill();
    expect(standIn.sandboxes()).toHaveLength(0);
  });
});

describe("the E2B stand-in's plan limits and switches", () => {
  it("answers 429 past the plan's concurrency, and each behaviour can be switched off", async () => {
    const s = await startE2bStandIn({
      backend: createLocalProvider(),
      maxConcurrentSandboxes: 1,
      killOnTimeout: false,
      templates: "any",
      maxTimeoutHours: 24,
    });
    const o = { apiKey: s.apiKey, apiUrl: s.apiUrl, sandboxUrl: s.sandboxUrl, domain: s.domain };
    try {
      const a = await Sandbox.create("any-template", { ...o, timeoutMs: 1000 });
      const refused = await Sandbox.create("base", o).catch((e: unknown) => e);
      expect((refused as Error).name).toBe("RateLimitError");
      expect((refused as Error).message).toContain("maximum number of concurrent E2B sandboxes (1)");
      // Past its timeout, with killOnTimeout off, it still runs.
      await new Promise((r) => setTimeout(r, 2000));
      expect((await a.commands.run("echo up")).stdout).toBe("up\n");
      await a.kill();
      const b = await Sandbox.create("base", { ...o, timeoutMs: 20 * 3600_000 });
      await b.kill();
    } finally {
      await s.stop();
    }
  }, 30_000);
});
