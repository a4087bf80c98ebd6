import type { RunnerDestination, RunnerMount } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { CredentialsInSandboxError } from "@roder/runner-storage";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// Bucket mounts run rclone inside the machine with the credentials there: only when the destination says so.
const SECRET = "fly-cred-in-sandbox-canary-6d21";
let standIn: FlyStandIn;
beforeAll(async () => {
  standIn = await startFlyStandIn({ backend: createLocalProvider() });
}, 60_000);
afterAll(async () => {
  await standIn?.stop();
});

const mount = (name: string): RunnerMount => ({
  name,
  path: `mnt/${name}`,
  read_only: false,
  intent: { kind: "s3", uri: "s3://bucket/prefix", credentials: { id: "data" } },
});
const destination = (allow: unknown, mounts: RunnerMount[]): RunnerDestination => ({
  id: "fly-cred",
  provider_id: "fly",
  config: {
    app: "roder-test",
    image: "debian:bookworm-slim",
    ...(allow === undefined ? {} : { allow_credentials_in_sandbox: allow }),
  } as RunnerDestination["config"],
  default_manifest: { entries: [], mounts },
});

describe("fly: credentials in the machine only on request", () => {
  it("refuses an rclone mount the destination does not allow, before anything is created; the plan says so first", async () => {
    const provider = createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: {
        FLY_API_TOKEN: standIn.token,
        RODER_SECRET_DATA_ACCESS_KEY_ID: "AKIA-test",
        RODER_SECRET_DATA_SECRET_ACCESS_KEY: SECRET,
      },
    });
    const sent = () => standIn.bodies.length;
    const before = sent();
    for (const [allow, mounts] of [
      [undefined, [mount("data")]],
      [false, [mount("data")]],
      [["data"], [mount("data"), mount("logs")]],
    ] as const) {
      const d = destination(allow, [...mounts]);
      const plan = provider.planMounts(d);
      expect(plan.some((p) => p.strategy === "refused")).toBe(true);
      for (const call of [() => provider.validateDestination(d), () => provider.createSession(d)]) {
        const e = await call().then(
          () => null,
          (x: unknown) => x,
        );
        expect(CredentialsInSandboxError.isInstance(e), `${JSON.stringify(allow)}: ${e}`).toBe(true);
        expect((e as CredentialsInSandboxError).mount).toBe(
          allow === undefined || allow === false ? "data" : "logs",
        );
        expect(String(e)).toMatch(/allow_credentials_in_sandbox/);
        expect(String(e) + JSON.stringify(e)).not.toContain(SECRET);
      }
    }
    // Nothing reached Fly: no machine was created.
    expect(sent()).toBe(before);
    expect(standIn.machines()).toEqual([]);
    // The key is part of the config schema: a wrong type is an invalid config, not a silent refusal.
    const bad = await provider.validateDestination(destination("yes", [mount("data")])).then(
      () => null,
      (x: unknown) => x,
    );
    expect(bad).toMatchObject({ code: "invalid_destination_config" });
  });
});
