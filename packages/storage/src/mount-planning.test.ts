import { describe, expect, it } from "vitest";
import { planMountsFor } from "./mount-planning.js";

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

describe("planMountsFor (mount planning before create)", () => {
  it("says how each provider satisfies each mount, what it needs and which variables are missing", () => {
    const env = { RODER_SECRET_DATA_ACCESS_KEY_ID: "x", RODER_SECRET_DATA_SECRET_ACCESS_KEY: "y" };
    const local = planMountsFor("unix-local", destination, { env });
    expect(local.map((p) => p.strategy)).toEqual(["fuse-on-host", "bind", "fuse-on-host"]);
    expect(local[0]!.unset_env).toEqual([
      "RODER_SECRET_DATA_SESSION_TOKEN",
      "RODER_SECRET_DATA_REGION",
      "RODER_SECRET_DATA_ENDPOINT",
    ]);
    expect(local[2]!.env).toContain("RODER_SECRET_AZ_CONNECTION_STRING");
    expect(local[0]!.requires).toContain("rclone");
    const http = planMountsFor("http", destination, { env });
    expect(http.map((p) => p.strategy)).toEqual(["native", "native", "fuse-in-sandbox"]);
    expect(http[2]!.credentials_in_sandbox).toBe(true);
    const fly = planMountsFor("fly", destination, { env });
    // Buckets: rclone inside the machine (credentials there); volumes: not managed.
    expect(fly.map((p) => p.strategy)).toEqual(["fuse-in-sandbox", "unsupported", "fuse-in-sandbox"]);
    expect(fly[0]!.credentials_in_sandbox).toBe(true);
    expect(fly[0]!.requires).toEqual(["rclone", "fusermount3", "/dev/fuse"]);
    expect(planMountsFor("e2b", destination, { env }).map((p) => p.strategy)).toEqual(
      fly.map((p) => p.strategy),
    );
    expect(JSON.stringify([local, http, fly])).not.toMatch(/"x"|"y"/);
  });
});
