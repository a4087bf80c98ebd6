import { randomBytes } from "node:crypto";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// A multi-tenant app passes the Fly token per provider instance; env stays the default.
const TOKEN = `secret-canary-fly-${randomBytes(12).toString("hex")}`;
const WRONG = `secret-canary-wrong-${randomBytes(12).toString("hex")}`;
let standIn: FlyStandIn;

beforeAll(async () => {
  standIn = await startFlyStandIn({ backend: createLocalProvider(), token: TOKEN });
});
afterAll(async () => {
  await standIn.stop();
});

const config = { app: "roder-test", image: "debian:bookworm-slim" };
const leaks = (value: unknown, secret: string) => {
  const e = value as Error;
  return [String(e), e?.stack ?? "", JSON.stringify(value), JSON.stringify(e?.cause ?? null)].some((s) =>
    s.includes(secret),
  );
};

describe("createFlyProvider({ token })", () => {
  it("uses the token option over the environment, and keeps it out of state", async () => {
    const provider = createFlyProvider({
      baseUrl: standIn.baseUrl,
      token: TOKEN,
      env: { FLY_API_TOKEN: WRONG },
    });
    expect(provider.setupHint()).toBeNull();
    const session = await provider.createSession({ config });
    expect((await session.runCommand({ program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    expect(JSON.stringify(session.state())).not.toContain(TOKEN);
    await session.close();
  });

  it("a refused token fails without its value; a missing one names both routes", async () => {
    const error = await createFlyProvider({ baseUrl: standIn.baseUrl, token: WRONG, env: {} })
      .createSession({ config })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).not.toBeNull();
    expect(leaks(error, WRONG)).toBe(false);
    const none = createFlyProvider({ baseUrl: standIn.baseUrl, env: {} });
    expect(none.setupHint()).toMatch(/set FLY_API_TOKEN or pass token/);
    await expect(none.createSession({ config })).rejects.toThrow(
      /pass it with the 'token' option or set FLY_API_TOKEN/,
    );
  });
});
