import { describe, expect, it } from "vitest";
import { planHostMounts, planInSandboxMounts, planServerMounts } from "./mount-planning.js";

const destination = {
  id: "d",
  provider_id: "x",
  config: null,
  default_manifest: {
    entries: [],
    mounts: [
      {
        name: "data",
        path: "data",
        read_only: true,
        intent: { kind: "s3" as const, uri: "s3://b/p", credentials: { id: "data" } },
      },
      {
        name: "cache",
        path: "cache",
        read_only: false,
        intent: { kind: "provider_native" as const, uri: "/srv/cache" },
      },
      {
        name: "blob",
        path: "blob",
        read_only: true,
        intent: { kind: "azure_blob" as const, uri: "azure://acct/c", credentials: { id: "az" } },
      },
    ],
  },
};

describe("mount planners (planning before create), one per way of mounting", () => {
  it("says how each provider satisfies each mount, what it needs and which variables are missing", () => {
    const env = { RODER_SECRET_DATA_ACCESS_KEY_ID: "x", RODER_SECRET_DATA_SECRET_ACCESS_KEY: "y" };
    const local = planHostMounts(destination, { providerId: "unix-local", env });
    expect(local.map((p) => p.strategy)).toEqual(["fuse-on-host", "bind", "fuse-on-host"]);
    expect(local[0]!.unset_env).toEqual([
      "RODER_SECRET_DATA_SESSION_TOKEN",
      "RODER_SECRET_DATA_REGION",
      "RODER_SECRET_DATA_ENDPOINT",
    ]);
    expect(local[2]!.env).toContain("RODER_SECRET_AZ_CONNECTION_STRING");
    expect(local[0]!.requires).toContain("rclone");
    const http = planServerMounts(destination, { providerId: "http", env });
    // The server's backend mounts every kind (Azure here) with the server's secret: none reaches the sandbox.
    expect(http.map((p) => p.strategy)).toEqual(["native", "native", "native"]);
    expect(http.map((p) => p.credentials_in_sandbox)).toEqual([false, false, false]);
    const allowed = { ...destination, config: { allow_credentials_in_sandbox: true } };
    const fly = planInSandboxMounts(allowed, { providerId: "fly", env });
    // Buckets: rclone inside the machine (credentials there, as the destination allows); volumes: not managed.
    expect(fly.map((p) => p.strategy)).toEqual(["fuse-in-sandbox", "unsupported", "fuse-in-sandbox"]);
    expect(fly[0]!.credentials_in_sandbox).toBe(true);
    expect(fly[0]!.requires).toEqual(["rclone", "fusermount3", "/dev/fuse"]);
    expect(planInSandboxMounts(allowed, { providerId: "e2b", env }).map((p) => p.strategy)).toEqual(
      fly.map((p) => p.strategy),
    );
    expect(JSON.stringify([local, http, fly])).not.toMatch(/"x"|"y"/);
  });

  it("refuses in-sandbox mounts whose credentials the destination did not allow into the sandbox, naming the alternatives", () => {
    for (const provider of ["fly", "e2b"]) {
      const refused = planInSandboxMounts(destination, { providerId: provider, env: {} });
      expect(refused.map((p) => p.strategy)).toEqual(["refused", "unsupported", "refused"]);
      expect(refused[0]!.credentials_in_sandbox).toBe(false);
      expect(refused[0]!.reason).toMatch(/allow_credentials_in_sandbox: true \(or lists 'data'\)/);
      expect(refused[0]!.reason).toMatch(/provider-native mount/);
      expect(refused[0]!.reason).toMatch(/exportArtifact instead of a read-write mount/);
      // A list allows the mounts it names, and only those; anything but true or a list of names allows none.
      const listed = planInSandboxMounts(
        { ...destination, config: { allow_credentials_in_sandbox: ["data"] } },
        { providerId: provider },
      );
      expect(listed.map((p) => p.strategy)).toEqual(["fuse-in-sandbox", "unsupported", "refused"]);
      expect(listed[0]!.credentials_in_sandbox).toBe(true);
      for (const v of [false, "true", 1, [1]])
        expect(
          planInSandboxMounts(
            { ...destination, config: { allow_credentials_in_sandbox: v } },
            { providerId: provider },
          )[0]!.strategy,
          JSON.stringify(v),
        ).toBe("refused");
    }
    // Providers that keep the credentials out of the sandbox are not affected.
    expect(planHostMounts(destination, { providerId: "unix-local", env: {} })[0]!.strategy).toBe(
      "fuse-on-host",
    );
  });

  it("plans a kind the provider lacks here as unsupported, whatever the way of mounting", () => {
    const capabilities = {
      s3: true,
      gcs: true,
      r2: true,
      azure_blob: false,
      box_storage: true,
      provider_native: false,
    };
    for (const plan of [planHostMounts, planServerMounts, planInSandboxMounts]) {
      const p = plan(destination, { providerId: "p", env: {}, capabilities });
      expect(p.map((e) => e.strategy)).toEqual([
        plan === planHostMounts ? "fuse-on-host" : plan === planServerMounts ? "native" : "refused",
        "unsupported",
        "unsupported",
      ]);
      expect(p[2]!.reason).toBe("p: no azure_blob mounts here (capabilities().mounts)");
    }
  });
});
