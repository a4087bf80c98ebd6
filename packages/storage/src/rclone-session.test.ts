import { execFileSync } from "node:child_process";
import type { RunnerCommandRequestInput, RunnerCommandResult, RunnerMount } from "@roder/runner-contract";
import { describe, expect, it } from "vitest";
import { CredentialsInSandboxError } from "./credentials-in-sandbox.js";
import { checkSandboxMounts, mountManifestInSandbox } from "./rclone-session.js";

const SECRET = "rclone-session-canary-3f9a0c";
const env = { RODER_SECRET_DATA_ACCESS_KEY_ID: "AKIA-test", RODER_SECRET_DATA_SECRET_ACCESS_KEY: SECRET };
const mount = (name: string, read_only = false): RunnerMount => ({
  name,
  path: `mnt/${name}`,
  read_only,
  intent: { kind: "s3", uri: "s3://bucket/prefix", credentials: { id: "data" } },
});

describe("in-sandbox mounts: credentials in the sandbox only on request", () => {
  it("checkSandboxMounts refuses a bucket mount the destination does not allow, naming the key and the alternatives", () => {
    for (const allow of [undefined, false, [], ["other"]] as const) {
      let e: unknown;
      try {
        checkSandboxMounts("fly", [mount("data")], "/workspace", env, { allowCredentialsInSandbox: allow });
      } catch (error) {
        e = error;
      }
      expect(CredentialsInSandboxError.isInstance(e), `${JSON.stringify(allow)}: ${e}`).toBe(true);
      const err = e as CredentialsInSandboxError;
      expect(err.code).toBe("credentials_in_sandbox");
      expect(err).toMatchObject({ providerId: "fly", mount: "data" });
      expect(err.message).toMatch(/allow_credentials_in_sandbox: true \(or lists 'data'\)/);
      expect(err.message).toMatch(/provider-native mount/);
      expect(err.message).toMatch(/exportArtifact instead of a read-write mount/);
      expect(err.alternatives.length).toBeGreaterThanOrEqual(2);
      expect(JSON.stringify(err) + err.message).not.toContain(SECRET);
    }
    // Allowed for every mount, or for the mounts named.
    checkSandboxMounts("e2b", [mount("data"), mount("logs")], "/w", env, { allowCredentialsInSandbox: true });
    checkSandboxMounts("e2b", [mount("data")], "/w", env, { allowCredentialsInSandbox: ["data"] });
    expect(() =>
      checkSandboxMounts("e2b", [mount("data"), mount("logs")], "/w", env, {
        allowCredentialsInSandbox: ["data"],
      }),
    ).toThrow(/mount 'logs'/);
    // With no option at all: refused (the safe default).
    expect(() => checkSandboxMounts("e2b", [mount("data", true)], "/w", env)).toThrow(
      CredentialsInSandboxError,
    );
  });

  it("mountManifestInSandbox refuses before running anything in the sandbox", async () => {
    const ran: string[] = [];
    // A real runner: the commands it is given run as processes here (none should be).
    const runner = {
      async runCommand(r: RunnerCommandRequestInput): Promise<RunnerCommandResult> {
        ran.push(r.program);
        const stdout = execFileSync(r.program, r.args ?? [], { encoding: "utf8" });
        return { command_id: r.command_id ?? "c", exit_code: 0, stdout, stderr: "" } as RunnerCommandResult;
      },
    };
    const e = await mountManifestInSandbox(runner, {
      providerId: "fly",
      mounts: [mount("data"), mount("logs")],
      workspaceRoot: "/workspace",
      env,
      allowCredentialsInSandbox: ["data"],
    }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(CredentialsInSandboxError.isInstance(e), String(e)).toBe(true);
    expect((e as CredentialsInSandboxError).mount).toBe("logs");
    expect(ran).toEqual([]);
  });
});
