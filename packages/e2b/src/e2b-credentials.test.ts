import { randomBytes } from "node:crypto";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

// A multi-tenant app passes the E2B key per provider instance; env stays the default.
const KEY = `e2b_secret-canary-${randomBytes(12).toString("hex")}`;
const WRONG = `e2b_secret-canary-wrong-${randomBytes(12).toString("hex")}`;
let standIn: E2bStandIn;

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
});
afterAll(async () => {
  await standIn.stop();
});

const urls = () => ({ apiUrl: standIn.apiUrl, sandboxUrl: standIn.sandboxUrl, domain: standIn.domain });
const leaks = (value: unknown, secret: string) => {
  const e = value as Error;
  return [String(e), e?.stack ?? "", JSON.stringify(value), JSON.stringify(e?.cause ?? null)].some((s) =>
    s.includes(secret),
  );
};

describe("createE2bProvider({ apiKey })", () => {
  it("uses the apiKey option over the environment, and keeps it out of state", async () => {
    const provider = createE2bProvider({ ...urls(), apiKey: KEY, env: { E2B_API_KEY: WRONG } });
    expect(provider.setupHint()).toBeNull();
    const session = await provider.createSession({ config: { template: "base" } });
    expect((await session.runCommand({ program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    expect(JSON.stringify(session.state())).not.toContain(KEY);
    const resumed = await provider.resumeSession(session.state());
    expect((await resumed.runCommand({ program: "true" })).exit_code).toBe(0);
    await session.close();
  });

  it("a refused key fails naming the option, never the value; a missing one names both routes", async () => {
    const error = await createE2bProvider({ ...urls(), apiKey: WRONG, env: {} })
      .createSession({ config: { template: "base" } })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(String(error)).toMatch(/refused the API key \(set the apiKey option\)/);
    expect(leaks(error, WRONG)).toBe(false);
    const none = createE2bProvider({ ...urls(), env: {} });
    expect(none.setupHint()).toMatch(/set E2B_API_KEY or pass apiKey/);
    await expect(none.createSession({ config: { template: "base" } })).rejects.toThrow(
      /pass it with the 'apiKey' option or set E2B_API_KEY/,
    );
  });
});
