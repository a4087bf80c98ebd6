import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { sweepExpiredSessions } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";
import { createE2bSweeper } from "./e2b-sweeper.js";

let standIn: E2bStandIn;
const root = resolve(import.meta.dirname, "../../..");

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
});
afterAll(async () => {
  await standIn.stop();
});

describe("e2b sweeper", () => {
  it("finds and kills the sandbox a crashed caller left behind, and only its owner's", async () => {
    const env = {
      E2B_API_KEY: standIn.apiKey,
      E2B_API_URL: standIn.apiUrl,
      E2B_SANDBOX_URL: standIn.sandboxUrl,
      E2B_DOMAIN: standIn.domain,
    };
    const other = await createE2bProvider({ env, owner: "someone-else" }).createSession({
      id: "keep",
      provider_id: "e2b",
      config: { template: "base" },
      default_manifest: { entries: [], mounts: [] },
    });
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "packages/e2b/src/__fixtures__/crash-mid-create.ts"],
      { cwd: root, env: { ...process.env, ...env, OWNER: "crashy" }, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr!.on("data", (b) => (stderr += b));
    const signal = await new Promise<string | null>((r) => child.on("exit", (_c, s) => r(s)));
    expect(signal, stderr).toBe("SIGKILL");
    const leaked = standIn.sandboxes().filter((s) => s.metadata.roder_owner === "crashy");
    expect(leaked).toHaveLength(1);
    const sweeper = createE2bSweeper({ env });
    // Not expired yet (ttl 30 s): a normal sweep keeps it; "now" past the expiry removes it.
    expect((await sweepExpiredSessions(sweeper, { owner: "crashy" })).removed).toEqual([]);
    const result = await sweepExpiredSessions(sweeper, {
      owner: "crashy",
      now: new Date(Date.now() + 60_000),
    });
    expect(result.removed).toEqual([leaked[0]!.sandboxID]);
    expect(standIn.sandboxes().map((s) => s.metadata.roder_owner)).toEqual(["someone-else"]);
    await other.close();
  }, 60_000);
});
