import { ProviderApiError, RunnerError, SessionNotFoundError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

const KEY = "e2b_fault_canary_91bd";
let standIn: E2bStandIn;
const provider = (key = KEY) =>
  createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: { E2B_API_KEY: key },
  });
const destination = {
  id: "d",
  provider_id: "e2b",
  config: { template: "base" },
  default_manifest: { entries: [], mounts: [] },
};

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
});
afterEach(() => standIn.faults.clear());
afterAll(async () => {
  await standIn.stop();
});

const caught = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a failure");
    },
    (e) => e,
  );
const text = (e: unknown) => {
  let t = "";
  for (let c = e; c; c = (c as { cause?: unknown }).cause)
    t += `${(c as Error).message}\n${(c as Error).stack}\n`;
  return t;
};

describe("e2b provider under faults", () => {
  it("retries a create refused with 429 and then works", async () => {
    standIn.faults.set({ status: 429, times: 2, match: /POST \/v2\/sandboxes$/ });
    const s = await provider().createSession(destination);
    expect((await s.runCommand({ command_id: "c", program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    await s.close();
    expect(standIn.faults.injected).toBeGreaterThanOrEqual(2);
  });

  it("fails with a typed error on 5xx and a reset create, leaving no sandbox", async () => {
    standIn.faults.set({ status: 503, match: /POST \/v2\/sandboxes$/ });
    expect(ProviderApiError.isInstance(await caught(provider().createSession(destination)))).toBe(true);
    standIn.faults.set({ resetConnection: true, match: /POST \/v2\/sandboxes$/ });
    expect(RunnerError.isInstance(await caught(provider().createSession(destination)))).toBe(true);
    expect(standIn.sandboxes()).toHaveLength(0);
  });

  it("reports a sandbox that dies mid-command with a typed error, and close still succeeds", async () => {
    const s = await provider().createSession(destination);
    const running = s.runCommand({ command_id: "long", program: "sleep", args: ["30"] }).then(
      (r) => r,
      (x) => x,
    );
    await new Promise((r) => setTimeout(r, 300));
    await standIn.killSandbox(s.state().session_id);
    const e = await running;
    // The sandbox's envd connections drop as the VM goes; the SDK finds it gone through /health: typed.
    expect(SessionNotFoundError.isInstance(e), String(e)).toBe(true);
    await s.close();
    expect(standIn.sandboxes()).toHaveLength(0);
  });

  it("maps authentication failures to a typed error naming E2B_API_KEY, without the key", async () => {
    const e = await caught(provider("e2b_wrong_key_value_123").createSession(destination));
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(401);
    expect((e as Error).message).toContain("E2B_API_KEY");
    expect(text(e)).not.toContain("e2b_wrong_key_value_123");
    const none = createE2bProvider({ apiUrl: standIn.apiUrl, env: {} });
    expect(none.setupHint()).toContain("E2B_API_KEY");
    expect(((await caught(none.createSession(destination))) as Error).message).toContain("E2B_API_KEY");
  });

  it("refuses an API key in the destination config", async () => {
    const e = await caught(
      provider().validateDestination({
        ...destination,
        config: { template: "base", api_key: "e2b_abcdef123456" },
      }),
    );
    expect((e as Error).message).toContain("E2B_API_KEY");
  });

  it("tags sandboxes with owner and expiry metadata and resumes a paused sandbox", async () => {
    const s = await provider().createSession(destination);
    const meta = standIn.sandboxes().find((x) => x.sandboxID === s.state().session_id)!.metadata;
    expect(meta.roder_owner).toBe("roder-runners");
    expect(Date.parse(meta.roder_expires_at!)).toBeGreaterThan(Date.now());
    standIn.sandboxes().find((x) => x.sandboxID === s.state().session_id)!.state = "paused";
    const again = await provider().resumeSession(s.state());
    expect((await again.runCommand({ command_id: "c", program: "true" })).exit_code).toBe(0);
    await again.close();
    expect(standIn.sandboxes()).toHaveLength(0);
  });
});
