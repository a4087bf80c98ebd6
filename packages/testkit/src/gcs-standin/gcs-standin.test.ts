import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Storage } from "@google-cloud/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crc32c } from "./crc32c.js";
import { type GcsStandIn, startGcsStandIn } from "./gcs-standin.js";

const run = promisify(execFile);
let gcs: GcsStandIn;
let storage: Storage;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  gcs = await startGcsStandIn();
  storage = new Storage({
    apiEndpoint: gcs.endpoint,
    projectId: gcs.projectId,
    credentials: gcs.serviceAccountKey as never,
  });
});
afterAll(async () => {
  await gcs.stop();
});

describe("GCS stand-in, driven by the unmodified @google-cloud/storage SDK and rclone", () => {
  it("computes CRC-32C like the reference vector", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
  });

  it("creates buckets, uploads (multipart and chunked resumable), downloads with validation and ranges, lists and deletes", async () => {
    const [bucket] = await storage.createBucket("sdk-bucket");
    await bucket
      .file("small/a.txt")
      .save("hello gcs", { resumable: false, contentType: "text/plain", metadata: { metadata: { k: "v" } } });
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
    await bucket
      .file("big/b.bin")
      .save(big, { resumable: true, chunkSize: 1024 * 1024, validation: "crc32c" });
    const [small] = await bucket.file("small/a.txt").download({ validation: true });
    expect(small.toString()).toBe("hello gcs");
    const [back] = await bucket.file("big/b.bin").download({ validation: true });
    expect(sha(back)).toBe(sha(big));
    const [part] = await bucket.file("big/b.bin").download({ start: 10, end: 19 });
    expect(part.equals(big.subarray(10, 20))).toBe(true);
    const [meta] = await bucket.file("small/a.txt").getMetadata();
    expect(meta).toMatchObject({ size: "9", contentType: "text/plain", metadata: { k: "v" } });
    for (let i = 0; i < 5; i++) await bucket.file(`list/f${i}.txt`).save(String(i), { resumable: false });
    const [files, , apiResponse] = await bucket.getFiles({ prefix: "", delimiter: "/", autoPaginate: false });
    expect(files).toHaveLength(0);
    expect((apiResponse as { prefixes: string[] }).prefixes).toEqual(["big/", "list/", "small/"]);
    const [page1, next] = await bucket.getFiles({ prefix: "list/", maxResults: 2, autoPaginate: false });
    expect(page1.map((f) => f.name)).toEqual(["list/f0.txt", "list/f1.txt"]);
    const [page2] = await bucket.getFiles(next!);
    expect(page2.map((f) => f.name)).toEqual(["list/f2.txt", "list/f3.txt"]);
    const [all] = await bucket.getFiles({ prefix: "list/" });
    expect(all).toHaveLength(5);
    await bucket.file("list/f0.txt").delete();
    expect((await bucket.file("list/f0.txt").exists())[0]).toBe(false);
    expect(gcs.pendingUploads()).toEqual([]);
  });

  it("accepts V4 signed URLs made by the SDK and refuses tampered or expired ones", async () => {
    const [bucket] = await storage.createBucket("signed-bucket");
    const file = bucket.file("up/data.bin");
    const [putUrl] = await file.getSignedUrl({
      version: "v4",
      action: "write",
      expires: Date.now() + 600_000,
      contentType: "application/octet-stream",
    });
    const data = Buffer.from([0, 1, 2, 3, 255]);
    const dir = mkdtempSync(join(tmpdir(), "gcs-signed-"));
    writeFileSync(join(dir, "d.bin"), data);
    // Async: the stand-in runs in this process, a synchronous child would block it.
    await run("curl", [
      "-sS",
      "-f",
      "-X",
      "PUT",
      "-T",
      join(dir, "d.bin"),
      "-H",
      "Content-Type: application/octet-stream",
      putUrl,
    ]);
    const [getUrl] = await file.getSignedUrl({
      version: "v4",
      action: "read",
      expires: Date.now() + 600_000,
    });
    expect(Buffer.from(await (await fetch(getUrl)).arrayBuffer()).equals(data)).toBe(true);
    const tampered = getUrl.replace(
      /X-Goog-Signature=([0-9a-f])/,
      (_m, c: string) => `X-Goog-Signature=${c === "0" ? "1" : "0"}`,
    );
    expect((await fetch(tampered)).status).toBe(403);
    const otherObject = getUrl.replace("up/data.bin", "up/other.bin");
    expect((await fetch(otherObject)).status).toBe(403);
  });

  it("works with rclone (env-only config) up and down, byte for byte", async () => {
    await storage.createBucket("rclone-bucket");
    const dir = mkdtempSync(join(tmpdir(), "gcs-rclone-"));
    const payload = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 255;
    writeFileSync(join(dir, "up.bin"), payload);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      RCLONE_CONFIG: "/dev/null",
      RCLONE_CONFIG_G_TYPE: "google cloud storage",
      RCLONE_CONFIG_G_ENDPOINT: `${gcs.endpoint}/storage/v1/`,
      RCLONE_CONFIG_G_ANONYMOUS: "true",
      RCLONE_CONFIG_G_NO_CHECK_BUCKET: "true",
      RCLONE_CONFIG_G_BUCKET_POLICY_ONLY: "true",
    };
    await run("rclone", ["copyto", join(dir, "up.bin"), "G:rclone-bucket/dir/up.bin"], { env });
    const [viaSdk] = await storage.bucket("rclone-bucket").file("dir/up.bin").download();
    expect(sha(viaSdk)).toBe(sha(payload));
    await run("rclone", ["copyto", "G:rclone-bucket/dir/up.bin", join(dir, "down.bin")], { env });
    expect(sha(readFileSync(join(dir, "down.bin")))).toBe(sha(payload));
    expect((await run("rclone", ["lsf", "G:rclone-bucket/dir"], { env })).stdout).toBe("up.bin\n");
  });
});
