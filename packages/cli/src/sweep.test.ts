import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createFlyProvider } from "@roder/runner-fly";
import { createHttpRunnerProvider, createRunnerServer } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
let standIn: FlyStandIn;

beforeAll(async () => {
  execFileSync("npx", ["turbo", "run", "build", "--filter=@roder/runner-cli..."], {
    cwd: root,
    stdio: "ignore",
  });
  standIn = await startFlyStandIn({ backend: createLocalProvider() });
}, 300_000);
afterAll(async () => {
  await standIn?.stop();
});

describe("roder-runner sweep (built binary, fly stand-in)", () => {
  it("lists with --dry-run, then removes only the owner's expired machines", async () => {
    const make = (owner: string) =>
      createFlyProvider({
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token },
        owner,
      }).createSession({
        id: owner,
        provider_id: "fly",
        config: { app: "roder-test", image: "debian:bookworm-slim", ttl_seconds: 1 },
        default_manifest: { entries: [], mounts: [] },
      });
    const [, keep] = await Promise.all([make("cli-owner"), make("other-owner")]);
    await new Promise((r) => setTimeout(r, 1200));
    const env = { ...process.env, FLY_API_URL: standIn.baseUrl, FLY_API_TOKEN: standIn.token };
    // Async children: the stand-in runs in this process.
    const dry = await run(
      process.execPath,
      [bin, "sweep", "--provider", "fly", "--app", "roder-test", "--owner", "cli-owner", "--dry-run"],
      { env },
    );
    expect(dry.stdout).toMatch(/expired \(dry run\)\n1 found, 0 removed, 0 errors\n$/);
    expect(standIn.machines()).toHaveLength(2);
    const real = await run(
      process.execPath,
      [bin, "sweep", "--provider", "fly", "--app", "roder-test", "--owner", "cli-owner", "--json"],
      { env },
    );
    expect(JSON.parse(real.stdout).removed).toHaveLength(1);
    expect(standIn.machines().map((m) => (m.config.metadata as Record<string, string>).roder_owner)).toEqual([
      "other-owner",
    ]);
    const usage = await run(process.execPath, [bin, "sweep", "--provider", "fly", "--owner", "x"], {
      env,
    }).catch((e) => e);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("needs --app");
    await keep.close();
  }, 120_000);
});

describe("roder-runner sweep --provider local (built binary)", () => {
  it("removes only the owner's expired workspaces under --root", async () => {
    const root = mkdtempSync(join(tmpdir(), "roder-cli-sweep-"));
    const make = (owner: string, ttl: number) =>
      createLocalProvider({ root, owner, registryDir: join(root, ".registry") }).createSession({
        id: owner,
        provider_id: "unix-local",
        config: { ttl_seconds: ttl },
        default_manifest: { entries: [], mounts: [] },
      });
    const [expired, fresh, other] = await Promise.all([
      make("cli-owner", 1),
      make("cli-owner", 3600),
      make("other-owner", 1),
    ]);
    await new Promise((r) => setTimeout(r, 1200));
    const args = [bin, "sweep", "--provider", "local", "--root", root, "--owner", "cli-owner"];
    const dry = await run(process.execPath, [...args, "--dry-run"]);
    expect(dry.stdout).toContain(`${expired.info.sessionId}  ready`);
    expect(dry.stdout).toContain("expired (dry run)");
    expect(dry.stdout).toMatch(/2 found, 0 removed, 0 errors\n$/);
    expect(existsSync(expired.info.workspaceRoot)).toBe(true);
    const real = JSON.parse((await run(process.execPath, [...args, "--json"])).stdout);
    expect(real.removed).toEqual([expired.info.sessionId]);
    expect(existsSync(expired.info.workspaceRoot)).toBe(false);
    expect(existsSync(fresh.info.workspaceRoot)).toBe(true);
    expect(existsSync(other.info.workspaceRoot)).toBe(true);
    await Promise.all([fresh.close(), other.close()]);
    rmSync(root, { recursive: true, force: true });
  }, 60_000);
});

describe("roder-runner sweep --provider http (built binary)", () => {
  it("removes only the owner's expired sessions on the server at --url", async () => {
    const token = "cli-sweep-token-0123456789";
    const server = createRunnerServer({ provider: createLocalProvider(), token });
    const { url } = await server.listen(0);
    const make = (owner: string, ttl: number) =>
      createHttpRunnerProvider({
        baseUrl: url,
        env: { RODER_RUNNER_HTTP_TOKEN: token },
        owner,
      }).createSession({
        id: owner,
        provider_id: "http",
        config: { ttl_seconds: ttl },
        default_manifest: { entries: [], mounts: [] },
      });
    const [expired, fresh, other] = await Promise.all([
      make("cli-owner", 1),
      make("cli-owner", 3600),
      make("other-owner", 1),
    ]);
    await new Promise((r) => setTimeout(r, 1200));
    const env = { ...process.env, RODER_RUNNER_HTTP_TOKEN: token };
    const args = [bin, "sweep", "--provider", "http", "--url", url, "--owner", "cli-owner"];
    const dry = await run(process.execPath, [...args, "--dry-run"], { env });
    expect(dry.stdout).toMatch(/2 found, 0 removed, 0 errors\n$/);
    const real = JSON.parse((await run(process.execPath, [...args, "--json"], { env })).stdout);
    expect(real.removed).toEqual([expired.state().session_id]);
    expect(server.sessionCount()).toBe(2);
    const echo = await fresh.runCommand({
      command_id: "e",
      program: "echo",
      args: ["ok"],
      timeout_ms: 10_000,
    });
    expect(echo.stdout).toBe("ok\n");
    // Another owner's session is past its expiry too, but not this owner's: still there (for the server to reap).
    const listed = await fetch(`${url}/sessions?owner=other-owner`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await listed.json()) as { sessions: Array<{ session_id: string }> };
    expect(body.sessions.map((s) => s.session_id)).toEqual([other.state().session_id]);
    const usage = await run(process.execPath, [bin, "sweep", "--provider", "http", "--owner", "x"], {
      env: { ...env, RODER_RUNNER_HTTP_URL: "" },
    }).catch((e) => e);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("needs --url");
    await server.close();
  }, 60_000);
});
