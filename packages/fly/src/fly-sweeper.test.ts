import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { sweepExpiredSessions } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

let standIn: FlyStandIn;
const root = resolve(import.meta.dirname, "../../..");

beforeAll(async () => {
  // Machines take 2 s to start, so the caller below dies while createSession is waiting.
  standIn = await startFlyStandIn({ backend: createLocalProvider(), startDelayMs: 2000 });
});
afterAll(async () => {
  await standIn.stop();
});

describe("fly sweeper", () => {
  it("finds and removes the machine a caller killed mid-create left behind, and only that", async () => {
    const other = await createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: { FLY_API_TOKEN: standIn.token },
      owner: "someone-else",
    }).createSession({
      id: "keep",
      provider_id: "fly",
      config: { app: "roder-test", image: "debian:bookworm-slim", ttl_seconds: 1 },
      default_manifest: { entries: [], mounts: [] },
    });
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "packages/fly/src/__fixtures__/crash-mid-create.ts"],
      {
        cwd: root,
        env: {
          ...process.env,
          FLY_API_URL: standIn.baseUrl,
          FLY_API_TOKEN: standIn.token,
          OWNER: "crashy",
          CRASH_AFTER_MS: "1500",
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr!.on("data", (b) => (stderr += b));
    const signal = await new Promise<string | null>((r) => child.on("exit", (_c, s) => r(s)));
    expect(signal, stderr).toBe("SIGKILL");
    const leaked = standIn
      .machines()
      .filter((m) => (m.config.metadata as Record<string, string>).roder_owner === "crashy");
    expect(leaked).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1200));
    const sweeper = createFlySweeper({
      app: "roder-test",
      baseUrl: standIn.baseUrl,
      env: { FLY_API_TOKEN: standIn.token },
    });
    const dry = await sweepExpiredSessions(sweeper, { owner: "crashy", dryRun: true });
    expect(dry.found.map((s) => s.session_id)).toEqual([leaked[0]!.id]);
    expect(dry.removed).toEqual([]);
    const result = await sweepExpiredSessions(sweeper, { owner: "crashy" });
    expect(result.removed).toEqual([leaked[0]!.id]);
    expect(result.errors).toEqual([]);
    expect(standIn.machines().map((m) => (m.config.metadata as Record<string, string>).roder_owner)).toEqual([
      "someone-else",
    ]);
    await other.close();
  }, 60_000);

  it("removes an expired machine's workspace volume with it", async () => {
    const session = await createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: { FLY_API_TOKEN: standIn.token },
      owner: "abandoned",
    }).createSession({
      id: "vol",
      provider_id: "fly",
      config: {
        app: "roder-test",
        image: "debian:bookworm-slim",
        ttl_seconds: 1,
        region: "ams",
        volume: { name: "swept" },
      },
      default_manifest: { entries: [], mounts: [] },
    });
    const volumeId = (session.state().metadata as { volume_id: string }).volume_id;
    expect(standIn.volumes().map((v) => v.id)).toContain(volumeId);
    await new Promise((r) => setTimeout(r, 1200));
    const result = await sweepExpiredSessions(
      createFlySweeper({
        app: "roder-test",
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token },
      }),
      { owner: "abandoned" },
    );
    expect(result.removed).toEqual([session.state().session_id]);
    expect(result.errors).toEqual([]);
    expect(standIn.volumes().map((v) => v.id)).not.toContain(volumeId);
  }, 60_000);
});
