import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// A multi-tenant app passes the bearer token per provider instance; env stays the default.
const TOKEN = `secret-canary-http-${randomBytes(12).toString("hex")}`;
const WRONG = `secret-canary-wrong-${randomBytes(12).toString("hex")}`;
let root: string;
let server: RunnerServer;
let url: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "roder-http-cred-"));
  server = createRunnerServer({
    provider: createLocalProvider({ root, registryDir: join(root, ".registry") }),
    token: TOKEN,
  });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

const leaks = (value: unknown, secret: string) => {
  const e = value as Error;
  return [String(e), e?.stack ?? "", JSON.stringify(value), JSON.stringify(e?.cause ?? null)].some((s) =>
    s.includes(secret),
  );
};

describe("createHttpRunnerProvider({ token })", () => {
  it("uses the token option over the environment, and keeps it out of state", async () => {
    const provider = createHttpRunnerProvider({
      baseUrl: url,
      token: TOKEN,
      env: { RODER_RUNNER_HTTP_TOKEN: WRONG },
    });
    expect(provider.setupHint()).toBeNull();
    const session = await provider.createSession({ config: {} });
    expect((await session.runCommand({ program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    expect(JSON.stringify(session.state())).not.toContain(TOKEN);
    const resumed = await provider.resumeSession(session.state());
    expect((await resumed.runCommand({ program: "true" })).exit_code).toBe(0);
    await session.close();
  });

  it("a refused token fails naming the option, never the value", async () => {
    const error = await createHttpRunnerProvider({ baseUrl: url, token: WRONG, env: {} })
      .createSession({ config: {} })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(String(error)).toMatch(/refused the token \(set the token option\)/);
    expect(leaks(error, WRONG)).toBe(false);
  });

  it("without option or env, the error names both routes", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: {} });
    expect(provider.setupHint()).toMatch(/RODER_RUNNER_HTTP_TOKEN \(or the token option\)/);
    await expect(provider.createSession({ config: {} })).rejects.toThrow(
      /pass it with the 'token' option or set RODER_RUNNER_HTTP_TOKEN/,
    );
  });
});

describe("createHttpRunnerProvider({ token: () => … })", () => {
  it("asks the function before each request (a token from a secret store), never caching it", async () => {
    let current = WRONG;
    let asked = 0;
    const provider = createHttpRunnerProvider({
      baseUrl: url,
      env: {},
      token: async () => {
        asked++;
        return current;
      },
    });
    const refused = await provider.createSession({ config: null }).catch((e) => e);
    expect(String(refused)).toMatch(/refused/);
    expect(leaks(refused, WRONG)).toBe(false);
    // Rotated in the store: the next request carries the new value.
    current = TOKEN;
    const session = await provider.createSession({ config: null });
    const r = await session.runCommand({ command_id: "c", program: "true" });
    expect(r.exit_code).toBe(0);
    expect(asked).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(session.state())).not.toContain(TOKEN);
    await session.close();
  });
});
