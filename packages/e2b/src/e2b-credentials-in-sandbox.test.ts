import type { RunnerDestination, RunnerMount } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { CredentialsInSandboxError } from "@roder/runner-storage";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

// Bucket mounts run rclone inside the sandbox with the credentials there: only when the destination says so.
const SECRET = "e2b-cred-in-sandbox-canary-91c4";
let standIn: E2bStandIn;
beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
}, 60_000);
afterAll(async () => {
  await standIn?.stop();
});

const mount = (name: string): RunnerMount => ({
  name,
  path: `mnt/${name}`,
  read_only: true,
  intent: { kind: "s3", uri: "s3://bucket/prefix", credentials: { id: "data" } },
});
const destination = (allow: unknown, mounts: RunnerMount[]): RunnerDestination => ({
  id: "e2b-cred",
  provider_id: "e2b",
  config: {
    template: "base",
    ...(allow === undefined ? {} : { allow_credentials_in_sandbox: allow }),
  } as RunnerDestination["config"],
  default_manifest: { entries: [], mounts },
});

describe("e2b: credentials in the sandbox only on request", () => {
  it("refuses an rclone mount the destination does not allow, before any sandbox is created; the plan says so first", async () => {
    const provider = createE2bProvider({
      apiUrl: standIn.apiUrl,
      sandboxUrl: standIn.sandboxUrl,
      domain: standIn.domain,
      env: {
        E2B_API_KEY: standIn.apiKey,
        RODER_SECRET_DATA_ACCESS_KEY_ID: "AKIA-test",
        RODER_SECRET_DATA_SECRET_ACCESS_KEY: SECRET,
      },
    });
    const before = standIn.requests.length;
    for (const [allow, mounts, refused] of [
      [undefined, [mount("data")], "data"],
      [false, [mount("data")], "data"],
      [["data"], [mount("data"), mount("logs")], "logs"],
    ] as const) {
      const d = destination(allow, [...mounts]);
      expect(provider.planMounts(d).find((p) => p.name === refused)?.strategy).toBe("refused");
      for (const call of [() => provider.validateDestination(d), () => provider.createSession(d)]) {
        const e = await call().then(
          () => null,
          (x: unknown) => x,
        );
        expect(CredentialsInSandboxError.isInstance(e), `${JSON.stringify(allow)}: ${e}`).toBe(true);
        expect((e as CredentialsInSandboxError).mount).toBe(refused);
        expect(String(e) + JSON.stringify(e)).not.toContain(SECRET);
      }
    }
    // Nothing reached E2B: no sandbox was created.
    expect(standIn.requests.slice(before)).toEqual([]);
    expect(standIn.sandboxes()).toEqual([]);
  });
});
