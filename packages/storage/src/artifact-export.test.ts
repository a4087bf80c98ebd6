import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { MissingDependencyError, RunnerError } from "@roder/runner-contract";
import { type AzuriteEmulator, type S3Emulator, startAzurite, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArtifactTargetConfigSchema, exportArtifact, parseArtifactTarget } from "./artifact-export.js";
import { type ArtifactSource, hostArtifactSource } from "./artifact-source.js";
import { loadOptionalModule } from "./load-optional.js";

let s3: S3Emulator;
let az: AzuriteEmulator;
const CANARY = "s3-secret-canary-0b7e4f";
const env = () => ({
  RODER_SECRET_ART_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_ART_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_R2ART_ACCOUNT_ID: "0123456789abcdef0123456789abcdef",
  RODER_SECRET_R2ART_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_R2ART_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_AZ_CONNECTION_STRING: az.connectionString,
  RODER_SECRET_CANARY_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_CANARY_SECRET_ACCESS_KEY: CANARY,
});
const work = mkdtempSync(join(tmpdir(), "roder-art-"));
const bigFile = join(work, "data.bin");
const dir = join(work, "report");

beforeAll(async () => {
  [s3, az] = await Promise.all([startS3Emulator({ buckets: ["artifacts", "r2-artifacts"] }), startAzurite()]);
  await BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("artifacts").create();
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 255;
  writeFileSync(bigFile, bytes);
  mkdirSync(join(dir, "sub"), { recursive: true });
  writeFileSync(join(dir, "a.txt"), "alpha");
  writeFileSync(join(dir, "sub", "b.bin"), Buffer.from([0, 255, 1]));
}, 60_000);
afterAll(async () => {
  await Promise.all([s3?.stop(), az?.stop()]);
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const targets = () => ({
  s3: { uri: "s3://artifacts/runs", credentials: { id: "art" }, endpoint: s3.endpoint },
  r2: {
    uri: "r2://r2-artifacts/out",
    credentials: { id: "r2art" },
    endpoint: s3.endpoint,
    force_path_style: true,
  },
  azure: { uri: "azure://devstoreaccount1/artifacts/out", credentials: { id: "az" } },
});

describe.each(["s3", "r2", "azure"] as const)("artifact export to %s", (kind) => {
  for (const mode of ["direct", "stream"] as const) {
    it(`exports a file (${mode} path) and the download URL returns the same bytes`, async () => {
      const target = ArtifactTargetConfigSchema.parse({ ...targets()[kind], mode });
      const r = await exportArtifact({
        providerId: "test",
        target,
        env: env(),
        source: hostArtifactSource(),
        request: { path: "data.bin", recursive: false },
        path: bigFile,
      });
      const meta = r.metadata as Record<string, unknown>;
      const expected = execFileSync("sha256sum", [bigFile]).toString().split(" ")[0];
      expect(meta).toMatchObject({
        size: 3 * 1024 * 1024 + 17,
        sha256: expected,
        transfer: mode,
        content_type: "application/octet-stream",
      });
      expect(r.artifact_id).toMatch(
        kind === "azure"
          ? /^azure:\/\/devstoreaccount1\/artifacts\/out\/.+\/data\.bin$/
          : new RegExp(`^${kind}://[a-z0-9-]+/out|runs/.+/data\\.bin$`),
      );
      const body = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      expect(sha(body)).toBe(expected);
      expect(JSON.stringify(r)).not.toContain("S3RVER_SECRET");
    });
  }

  it("exports a directory as .tar.gz that unpacks to the same tree", async () => {
    const target = ArtifactTargetConfigSchema.parse(targets()[kind]);
    const r = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source: hostArtifactSource(),
      request: { path: "report", recursive: true },
      path: dir,
    });
    expect(r.artifact_id.endsWith("/report.tar.gz")).toBe(true);
    const tgz = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
    const out = mkdtempSync(join(tmpdir(), "roder-untar-"));
    writeFileSync(join(out, "x.tgz"), tgz);
    execFileSync("tar", ["-xzf", join(out, "x.tgz"), "-C", out]);
    expect(execFileSync("cat", [join(out, "a.txt")]).toString()).toBe("alpha");
    expect([...execFileSync("cat", [join(out, "sub", "b.bin")])]).toEqual([0, 255, 1]);
  });
});

describe("artifact export safety", () => {
  it("presigned URLs carry no x-amz-checksum parameters", async () => {
    let seen = "";
    const source: ArtifactSource = {
      ...hostArtifactSource(),
      uploadDirect: async (file, up) => {
        seen = up.url;
        await hostArtifactSource().uploadDirect!(file, up);
      },
    };
    const target = ArtifactTargetConfigSchema.parse({ ...targets().s3, mode: "direct" });
    const r = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source,
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    });
    expect(seen).toContain("X-Amz-Signature=");
    expect(seen.toLowerCase()).not.toContain("x-amz-checksum");
    expect(r.url!.toLowerCase()).not.toContain("x-amz-checksum");
  });

  it("refuses a directory without recursive and leaves nothing", async () => {
    const target = ArtifactTargetConfigSchema.parse(targets().s3);
    const e = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source: hostArtifactSource(),
      request: { path: "report", recursive: false },
      path: dir,
    }).catch((x) => x);
    expect(RunnerError.isInstance(e) && e.code).toBe("invalid_request");
  });

  it("deletes an object whose streamed checksum does not match and leaves no multipart upload behind", async () => {
    const honest = hostArtifactSource();
    const lying: ArtifactSource = {
      ...honest,
      uploadDirect: undefined,
      prepare: async (p, r) => ({ ...(await honest.prepare(p, r)), sha256: "0".repeat(64) }),
    } as ArtifactSource;
    const target = ArtifactTargetConfigSchema.parse({
      ...targets().s3,
      uri: "s3://artifacts/mismatch",
      mode: "stream",
    });
    const e = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source: lying,
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    }).catch((x) => x);
    expect(RunnerError.isInstance(e) && e.code).toBe("checksum_mismatch");
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    });
    const list = await client.send(new ListObjectsV2Command({ Bucket: "artifacts", Prefix: "mismatch/" }));
    expect(list.KeyCount ?? 0).toBe(0);
    client.destroy();
  });

  it("a multipart upload whose source fails midway is aborted and leaves no object", async () => {
    // s3rver implements neither ListMultipartUploads nor abort, so a loopback proxy records the requests:
    // the abort (DELETE ?uploadId=) must be sent after the upload started.
    const seen: string[] = [];
    const target = new URL(s3.endpoint);
    const proxy = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    try {
      const honest = hostArtifactSource();
      const failing: ArtifactSource = {
        ...honest,
        uploadDirect: undefined,
        openStream: async () =>
          Readable.from(
            (async function* () {
              for (let i = 0; i < 20; i++) yield Buffer.alloc(1 << 20, i);
              throw new Error("disk went away");
            })(),
          ),
      } as ArtifactSource;
      const e = await exportArtifact({
        providerId: "test",
        target: ArtifactTargetConfigSchema.parse({
          ...targets().s3,
          endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
          uri: "s3://artifacts/failing",
          mode: "stream",
        }),
        env: env(),
        source: failing,
        request: { path: "data.bin", recursive: false },
        path: bigFile,
      }).catch((x) => x);
      expect(e).toBeInstanceOf(Error);
      expect(seen.some((l) => l.startsWith("POST") && l.includes("uploads"))).toBe(true);
      expect(seen.some((l) => l.startsWith("DELETE") && l.includes("uploadId="))).toBe(true);
      const client = new S3Client({
        endpoint: s3.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      });
      const list = await client.send(new ListObjectsV2Command({ Bucket: "artifacts", Prefix: "failing/" }));
      expect(list.KeyCount ?? 0).toBe(0);
      client.destroy();
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it("refuses a direct upload whose Content-MD5 does not match the bytes (nothing under the key)", async () => {
    const honest = hostArtifactSource();
    const lying: ArtifactSource = {
      ...honest,
      prepare: async (p, r) => ({
        ...(await honest.prepare(p, r)),
        md5Base64: Buffer.alloc(16).toString("base64"),
      }),
    };
    const target = ArtifactTargetConfigSchema.parse({
      ...targets().azure,
      uri: "azure://devstoreaccount1/artifacts/badmd5",
      mode: "direct",
    });
    const e = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source: lying,
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    }).catch((x) => x);
    expect(RunnerError.isInstance(e)).toBe(true);
    const names: string[] = [];
    for await (const b of BlobServiceClient.fromConnectionString(az.connectionString)
      .getContainerClient("artifacts")
      .listBlobsFlat({ prefix: "badmd5/" }))
      names.push(b.name);
    expect(names).toEqual([]);
  });

  it("keeps secret values out of errors", async () => {
    const target = ArtifactTargetConfigSchema.parse({
      ...targets().s3,
      credentials: { id: "canary" },
      uri: "s3://no-such-bucket-x/p",
      mode: "stream",
    });
    const e = await exportArtifact({
      providerId: "test",
      target,
      env: env(),
      source: hostArtifactSource(),
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    }).catch((x) => x);
    expect(e).toBeInstanceOf(Error);
    let text = "";
    for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause)
      text += `${(c as Error).message}\n${(c as Error).stack}\n${JSON.stringify(c)}`;
    expect(text).not.toContain(CANARY);
  });

  it("names the package to install when an SDK is missing, and importing the package loads no SDK", async () => {
    const e = await loadOptionalModule("@roder/definitely-not-installed", "a test").catch((x) => x);
    expect(MissingDependencyError.isInstance(e)).toBe(true);
    expect((e as Error).message).toContain("npm install @roder/definitely-not-installed");
    // A resolve hook reports every cloud-SDK specifier the import graph asks for.
    const hook = `export async function resolve(s, c, next) { if (/^@(aws-sdk|azure|google-cloud)\\//.test(s)) process.stderr.write("SDK:" + s + "\\n"); return next(s, c); }`;
    const run = (entry: string) =>
      spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          `import { register } from "node:module"; register("data:text/javascript,${encodeURIComponent(hook)}"); await import(${JSON.stringify(entry)});`,
        ],
        {
          cwd: join(import.meta.dirname, "../../.."),
          encoding: "utf8",
        },
      );
    const ours = run("./packages/storage/src/index.ts");
    expect(ours.status).toBe(0);
    expect(ours.stderr).not.toContain("SDK:");
    // The probe sees an SDK import when there is one.
    const control = run("./packages/storage/src/load-optional.ts").stderr + run("@aws-sdk/client-s3").stderr;
    expect(control).toContain("SDK:@aws-sdk/client-s3");
  });
});

void HeadObjectCommand;

describe('verify: "after" (hash while uploading, check size and ETag afterwards)', () => {
  const target = (uri: string) =>
    ArtifactTargetConfigSchema.parse({ ...targets().s3, uri, mode: "direct", verify: "after" });
  const listed = async (prefix: string) => {
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    });
    const list = await client.send(new ListObjectsV2Command({ Bucket: "artifacts", Prefix: prefix }));
    client.destroy();
    return list.KeyCount ?? 0;
  };

  it("uploads byte for byte and reports the sha256 it computed alongside the upload", async () => {
    let hashedAfterPrepare = false;
    const honest = hostArtifactSource();
    const source: ArtifactSource = {
      ...honest,
      prepare: async (p, r, o) => {
        const prepared = await honest.prepare(p, r, o);
        // Deferred: nothing hashed yet when the upload is being set up.
        hashedAfterPrepare = prepared.sha256 === "" && typeof prepared.hashes === "function";
        return prepared;
      },
    };
    const r = await exportArtifact({
      providerId: "test",
      target: target("s3://artifacts/after"),
      env: env(),
      source,
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    });
    expect(hashedAfterPrepare).toBe(true);
    const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
    const expected = createHash("sha256").update(readFileSync(bigFile)).digest("hex");
    expect(createHash("sha256").update(got).digest("hex")).toBe(expected);
    expect(r.metadata).toMatchObject({ sha256: expected, transfer: "direct", size: got.length });
  });

  it("deletes an object whose ETag is not the MD5 it computed, and says so", async () => {
    const honest = hostArtifactSource();
    const lying: ArtifactSource = {
      ...honest,
      prepare: async (p, r, o) => {
        const prepared = await honest.prepare(p, r, o);
        return {
          ...prepared,
          hashes: async () => ({ ...(await prepared.hashes!()), md5Base64: "AAAAAAAAAAAAAAAAAAAAAA==" }),
        };
      },
    };
    const e = await exportArtifact({
      providerId: "test",
      target: target("s3://artifacts/after-mismatch"),
      env: env(),
      source: lying,
      request: { path: "data.bin", recursive: false },
      path: bigFile,
    }).catch((x: unknown) => x);
    expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("checksum_mismatch");
    expect(await listed("after-mismatch/")).toBe(0);
  });

  it("is refused for stores whose ETag is not a checksum contract (GCS, Azure)", () => {
    const e = (() => {
      try {
        return parseArtifactTarget("test", {
          uri: "azure://acct/container/p",
          credentials: { id: "az" },
          verify: "after",
        });
      } catch (x) {
        return x;
      }
    })();
    expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("invalid_destination_config");
  });
});
