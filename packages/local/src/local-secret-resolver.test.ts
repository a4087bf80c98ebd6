import { randomUUID } from "node:crypto";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { MissingSecretError, type RunnerSecretRef } from "@roder/runner-contract";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// Issue 20 item 3: secrets from a store other than the environment. The resolver is the only place the
// credentials exist (the provider's env has none); mounts and artifact export use them, and the values appear
// nowhere the canary looks: state, errors, snapshots, commands' environments.
let s3: S3Emulator;
const CANARY = `canary-${randomUUID()}`;
beforeAll(async () => {
  s3 = await startS3Emulator({ buckets: ["vault-data", "vault-out"] });
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  await client.send(new PutObjectCommand({ Bucket: "vault-data", Key: "in/a.txt", Body: "from the bucket" }));
  client.destroy();
}, 60_000);
afterAll(async () => {
  await s3?.stop();
});

/** A destination with one read-only S3 mount whose credentials are the secret `id`. */
const withMount = (id: string, config: Record<string, unknown> = { isolation: "none" }) => ({
  config,
  default_manifest: {
    entries: [],
    mounts: [
      {
        name: "d",
        path: "data",
        read_only: true,
        intent: { kind: "s3" as const, uri: "s3://vault-data/in", credentials: { id } },
      },
    ],
  },
});

describe("a secret resolver", () => {
  it("supplies mount and artifact credentials the environment does not have; no value leaks", async () => {
    const asked: string[] = [];
    const provider = createLocalProvider({
      env: { PATH: process.env.PATH },
      secrets: async (ref: RunnerSecretRef) => {
        asked.push(ref.id);
        if (ref.id !== "vault-s3") return {};
        // The emulator takes any secret key: the canary whose value must never show (a presigned URL carries
        // the key id, never the secret).
        return { access_key_id: "S3RVER", secret_access_key: CANARY, endpoint: s3.endpoint };
      },
    });
    const session = await provider.createSession({
      config: {
        isolation: "bwrap",
        artifacts: { uri: "s3://vault-out/exports", credentials: { id: "vault-s3" }, endpoint: s3.endpoint },
      },
      default_manifest: {
        entries: [],
        mounts: [
          {
            name: "d",
            path: "data",
            read_only: true,
            intent: { kind: "s3", uri: "s3://vault-data/in", credentials: { id: "vault-s3" } },
          },
        ],
      },
    });
    try {
      expect(asked).toContain("vault-s3");
      const r = await session.runCommand({
        command_id: "c",
        program: "sh",
        args: ["-c", "cat data/a.txt; echo; env; cat /proc/self/environ | tr '\\0' '\\n'"],
      });
      expect(r.stdout.startsWith("from the bucket\n")).toBe(true);
      expect(r.stdout).not.toContain(CANARY);
      await session.writeFile({ path: "out.bin", contents: new Uint8Array([1, 2, 3]) });
      const exported = await session.exportArtifact({ path: "out.bin", recursive: false });
      expect([...new Uint8Array(await (await fetch(exported.url!)).arrayBuffer())]).toEqual([1, 2, 3]);
      // Resumed from its state by another provider object with the same resolver: the mount's and the
      // store's credentials come back from the resolver, not from the state.
      const state = session.state();
      const snap = await session.snapshot();
      for (const text of [JSON.stringify(state), JSON.stringify(snap), JSON.stringify(exported)])
        expect(text).not.toContain(CANARY);
      const again = await provider.resumeSession(state);
      const e2 = await again.exportArtifact({ path: "out.bin", recursive: false });
      expect(e2.url).toBeTruthy();
      const bad = await again.readFile({ path: "missing" }).catch((e) => e);
      expect(JSON.stringify(bad) + String(bad) + (bad as Error).stack).not.toContain(CANARY);
    } finally {
      await session.close();
    }
  }, 120_000);

  it("a resolver that fails is a MissingSecretError naming the secret, before anything is created", async () => {
    const provider = createLocalProvider({
      env: { PATH: process.env.PATH },
      secrets: async () => {
        throw new Error("vault is sealed");
      },
    });
    const e = await provider.createSession(withMount("sealed")).catch((x) => x);
    expect(MissingSecretError.isInstance(e), String(e)).toBe(true);
    expect(String(e)).toContain("'sealed'");
    expect(String(e)).toContain("vault is sealed");
  });

  it("what the resolver leaves out is read from the environment, and missing fields are named", async () => {
    const provider = createLocalProvider({
      env: { PATH: process.env.PATH, RODER_SECRET_HALF_SECRET_ACCESS_KEY: "S3RVER" },
      secrets: async () => ({ access_key_id: "S3RVER" }),
    });
    await provider.validateDestination(withMount("half"));
    const none = createLocalProvider({ env: { PATH: process.env.PATH }, secrets: async () => ({}) });
    const e = await none.validateDestination(withMount("nothing")).catch((x) => x);
    expect(MissingSecretError.isInstance(e)).toBe(true);
    expect(String(e)).toContain("RODER_SECRET_NOTHING_ACCESS_KEY_ID");
  });
});
