import { RunnerError, type RunnerManifest } from "@roder/runner-contract";
import { describe, expect, it } from "vitest";
import { checkSandboxDestination } from "./sandbox-destination.js";

const SECRET = "sandbox-destination-canary-81c2";
const env = { RODER_SECRET_DATA_ACCESS_KEY_ID: "AKIA-test", RODER_SECRET_DATA_SECRET_ACCESS_KEY: SECRET };
const manifest = (m: Partial<RunnerManifest> = {}) => ({
  default_manifest: { entries: [], mounts: [], ...m },
});
const codeOf = (f: () => void) => {
  try {
    f();
    return "accepted";
  } catch (e) {
    expect(String(e)).not.toContain(SECRET);
    return RunnerError.isInstance(e) ? e.code : `untyped: ${e}`;
  }
};

describe("checkSandboxDestination: what every sandbox provider checks before it creates anything", () => {
  it("accepts a destination whose artifacts target, mounts and entries are sound", () => {
    const ok = manifest({
      mounts: [
        {
          name: "data",
          path: "mnt/data",
          read_only: true,
          intent: { kind: "s3", uri: "s3://bucket/p", credentials: { id: "data" } },
        },
      ],
      entries: [{ target: "src/a.txt", source: "/src/a.txt", writable: true }],
    });
    const config = {
      workspace_root: "/workspace",
      allow_credentials_in_sandbox: true as const,
      artifacts: { uri: "s3://out/x", credentials: { id: "data" } },
    };
    expect(codeOf(() => checkSandboxDestination("e2b", ok, config, env))).toBe("accepted");
  });

  it("refuses, typed and naming no secret: a bad artifacts target, an unallowed or native mount, an entry outside", () => {
    const root = { workspace_root: "/workspace" };
    expect(
      codeOf(() =>
        checkSandboxDestination("fly", manifest(), { ...root, artifacts: { uri: "ftp://x" } }, env),
      ),
    ).toBe("invalid_destination_config");
    const s3 = {
      name: "data",
      path: "mnt/data",
      read_only: false,
      intent: { kind: "s3" as const, uri: "s3://bucket/p", credentials: { id: "data" } },
    };
    expect(codeOf(() => checkSandboxDestination("fly", manifest({ mounts: [s3] }), root, env))).toBe(
      "credentials_in_sandbox",
    );
    const native = { ...s3, intent: { kind: "provider_native" as const, uri: "/srv" } };
    expect(codeOf(() => checkSandboxDestination("e2b", manifest({ mounts: [native] }), root, env))).toBe(
      "unsupported_capability",
    );
    const outside = manifest({
      entries: [{ target: "../etc/passwd", source: "/src/x", writable: true }],
    });
    expect(codeOf(() => checkSandboxDestination("e2b", outside, root, env))).not.toBe("accepted");
  });
});
