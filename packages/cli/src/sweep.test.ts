import { execFile, execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createFlyProvider } from "@roder/runner-fly";
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
