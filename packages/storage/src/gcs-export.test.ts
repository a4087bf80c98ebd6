import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { type GcsStandIn, type S3Emulator, startGcsStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArtifactTargetConfigSchema, exportArtifact } from "./artifact-export.js";
import { type ArtifactSource, hostArtifactSource } from "./artifact-source.js";

// The testkit's GCS stand-in verifies V4 signatures against the service-account key it generated.
let gcs: GcsStandIn;
let s3: S3Emulator;
const env: Record<string, string> = {
  RODER_SECRET_HMAC_HMAC_ACCESS_ID: "S3RVER",
  RODER_SECRET_HMAC_HMAC_SECRET: "S3RVER",
};
const work = mkdtempSync(join(tmpdir(), "roder-gcs-art-"));
const file = join(work, "result.bin");
const dir = join(work, "tree");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  [gcs, s3] = await Promise.all([startGcsStandIn(), startS3Emulator({ buckets: ["gcs-hmac"] })]);
  gcs.createBucket("art-bucket");
  env.RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON = JSON.stringify(gcs.serviceAccountKey);
  const bytes = Buffer.alloc(2 * 1024 * 1024 + 5);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 255;
  writeFileSync(file, bytes);
  mkdirSync(join(dir, "d"), { recursive: true });
  writeFileSync(join(dir, "d", "x.txt"), "xyz");
}, 60_000);
afterAll(async () => {
  await Promise.all([gcs?.stop(), s3?.stop()]);
});

const target = (extra: object = {}) =>
  ArtifactTargetConfigSchema.parse({
    uri: "gs://art-bucket/runs",
    credentials: { id: "gcs" },
    endpoint: gcs.endpoint,
    ...extra,
  });

describe("artifact export to GCS (service-account JSON, V4 signed URLs)", () => {
  for (const mode of ["direct", "stream"] as const) {
    it(`exports a file (${mode}) and the signed download URL returns the same bytes`, async () => {
      const r = await exportArtifact({
        providerId: "test",
        target: target({ mode }),
        env,
        source: hostArtifactSource(),
        request: { path: "result.bin", recursive: false },
        path: file,
      });
      expect(r.artifact_id).toMatch(/^gs:\/\/art-bucket\/runs\/.+\/result\.bin$/);
      expect(r.url).toContain("X-Goog-Signature=");
      expect(r.url).toContain("X-Goog-Expires=3600");
      const expected = sha(readFileSync(file));
      expect(r.metadata).toMatchObject({ size: 2 * 1024 * 1024 + 5, sha256: expected, transfer: mode });
      const body = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      expect(sha(body)).toBe(expected);
      // The private key never leaves the host: not in the URL or the result.
      const text = JSON.stringify(r);
      expect(text).not.toContain("PRIVATE KEY");
      expect(text).not.toContain(gcs.serviceAccountKey.private_key!.split("\n")[1]!);
    });
  }

  it("exports a directory as .tar.gz", async () => {
    const r = await exportArtifact({
      providerId: "test",
      target: target(),
      env,
      source: hostArtifactSource(),
      request: { path: "tree", recursive: true },
      path: dir,
    });
    expect(r.artifact_id.endsWith("/tree.tar.gz")).toBe(true);
    const out = mkdtempSync(join(tmpdir(), "roder-gcs-untar-"));
    writeFileSync(join(out, "t.tgz"), Buffer.from(await (await fetch(r.url!)).arrayBuffer()));
    execFileSync("tar", ["-xzf", join(out, "t.tgz"), "-C", out]);
    expect(readFileSync(join(out, "d", "x.txt"), "utf8")).toBe("xyz");
  });

  for (const mode of ["direct", "stream"] as const) {
    it(`a wrong checksum (${mode}) leaves nothing under the final key`, async () => {
      const honest = hostArtifactSource();
      const lying: ArtifactSource = {
        ...honest,
        prepare: async (p, r) => ({
          ...(await honest.prepare(p, r)),
          ...(mode === "stream"
            ? { sha256: "f".repeat(64) }
            : { md5Base64: Buffer.alloc(16).toString("base64") }),
        }),
      };
      const e = await exportArtifact({
        providerId: "test",
        target: target({ mode, uri: `gs://art-bucket/bad-${mode}` }),
        env,
        source: lying,
        request: { path: "result.bin", recursive: false },
        path: file,
      }).catch((x) => x);
      expect(RunnerError.isInstance(e)).toBe(true);
      expect(gcs.objectNames().filter((k) => k.startsWith(`art-bucket/bad-${mode}/`))).toEqual([]);
    });
  }

  it("HMAC keys go through the S3-compatible XML API (s3rver as the endpoint) and return a gs:// id", async () => {
    const r = await exportArtifact({
      providerId: "test",
      target: ArtifactTargetConfigSchema.parse({
        uri: "gs://gcs-hmac/x",
        credentials: { id: "hmac" },
        endpoint: s3.endpoint,
        force_path_style: true,
        mode: "stream",
      }),
      env,
      source: hostArtifactSource(),
      request: { path: "result.bin", recursive: false },
      path: file,
    });
    expect(r.artifact_id).toMatch(/^gs:\/\/gcs-hmac\/x\/.+\/result\.bin$/);
    expect(sha(Buffer.from(await (await fetch(r.url!)).arrayBuffer()))).toBe(sha(readFileSync(file)));
  });

  it("a service-account JSON without a private key is an InvalidSecretError naming the variable only", async () => {
    const e = await exportArtifact({
      providerId: "test",
      target: target(),
      env: { RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON: '{"client_email":"a@b","secret_canary":"zz-canary"}' },
      source: hostArtifactSource(),
      request: { path: "result.bin", recursive: false },
      path: file,
    }).catch((x) => x);
    expect(RunnerError.isInstance(e) && e.code).toBe("invalid_secret");
    expect((e as Error).message).toContain("RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON");
    expect((e as Error).message).not.toContain("zz-canary");
  });
});
