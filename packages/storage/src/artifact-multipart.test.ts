import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import {
  type RemoteRunnerSession,
  type RunnerCommandRequestInput,
  RunnerError,
} from "@roder/runner-contract";
import {
  type AzuriteEmulator,
  type GcsStandIn,
  type S3Emulator,
  startAzurite,
  startGcsStandIn,
  startS3Emulator,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "./__fixtures__/fault-proxy.js";
import { ArtifactTargetConfigSchema, exportArtifact } from "./artifact-export.js";
import { gcsSignedUrl } from "./artifact-multipart-gcs.js";
import { type ArtifactSource, hostArtifactSource, sessionArtifactSource } from "./artifact-source.js";

// Multipart exports: parts of 5 MiB, a file of three parts. Each store sits behind a loopback proxy that
// records the requests, follows the multipart uploads and injects faults.
let s3: S3Emulator;
let az: AzuriteEmulator;
let s3proxy: FaultProxy;
let azproxy: FaultProxy;
let gcs: GcsStandIn;
let gcsproxy: FaultProxy;
const work = mkdtempSync(join(tmpdir(), "roder-mp-"));
const file = join(work, "big.bin");
const SIZE = 12 * 1024 * 1024 + 17;
let expected = "";
// A PATH with the POSIX tools and curl but no python3: an image where the portable part script runs.
const noPython = join(work, "no-python-bin");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  [s3, az, gcs] = await Promise.all([
    startS3Emulator({ buckets: ["mpart"] }),
    startAzurite(),
    startGcsStandIn(),
  ]);
  gcs.createBucket("mpart");
  await BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("mpart").create();
  [s3proxy, azproxy, gcsproxy] = await Promise.all([
    startFaultProxy(s3.endpoint),
    startFaultProxy(az.endpoint),
    startFaultProxy(gcs.endpoint),
  ]);
  const bytes = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) bytes[i] = (i * 2654435761) >>> 24;
  writeFileSync(file, bytes);
  expected = sha(bytes);
  mkdirSync(noPython);
  // The first of each name on PATH wins, as for a shell (a set: a dangling link does not "exist").
  const linked = new Set<string>();
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":"))
    for (const tool of existsSync(dir) ? readdirSync(dir) : [])
      if (!tool.startsWith("python") && !linked.has(tool)) {
        linked.add(tool);
        symlinkSync(join(dir, tool), join(noPython, tool));
      }
}, 60_000);
afterAll(async () => {
  await Promise.all([s3proxy?.stop(), azproxy?.stop(), gcsproxy?.stop()]);
  await Promise.all([s3?.stop(), az?.stop(), gcs?.stop()]);
});

const env = () => ({
  RODER_SECRET_S3_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_S3_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_R2_ACCOUNT_ID: "0123456789abcdef0123456789abcdef",
  RODER_SECRET_R2_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_R2_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_AZ_CONNECTION_STRING: az.connectionString,
  RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON: JSON.stringify(gcs.serviceAccountKey),
});

type Store = "s3" | "r2" | "azure" | "gcs";
const proxyOf = (store: Store) => (store === "azure" ? azproxy : store === "gcs" ? gcsproxy : s3proxy);
const targetOf = (store: Store, prefix: string, mode: "direct" | "stream") =>
  ArtifactTargetConfigSchema.parse({
    ...(store === "gcs"
      ? { uri: `gs://mpart/${prefix}`, credentials: { id: "gcs" }, endpoint: gcsproxy.endpoint }
      : store === "azure"
        ? {
            uri: `azure://devstoreaccount1/mpart/${prefix}`,
            credentials: { id: "az" },
            endpoint: `${azproxy.endpoint}/devstoreaccount1`,
          }
        : {
            uri: `${store}://mpart/${prefix}`,
            credentials: { id: store },
            endpoint: s3proxy.endpoint,
            force_path_style: true,
          }),
    mode,
    part_size_mib: 5,
    parallelism: 3,
  });

/**
 * A session whose commands run as real processes on this machine (what a sandbox's runner does); `path`
 * replaces its PATH (a sandbox image with other tools).
 */
function hostRunSession(
  seen: RunnerCommandRequestInput[],
  path = process.env.PATH,
  sandboxEnv: Record<string, string> = {},
): RemoteRunnerSession {
  return {
    runCommand: (req: RunnerCommandRequestInput) => {
      seen.push(req);
      return new Promise((resolve, reject) => {
        const p = spawn(req.program, req.args ?? [], {
          env: { PATH: path, ...sandboxEnv, ...Object.fromEntries(req.env ?? []) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (b) => (stdout += b));
        p.stderr.on("data", (b) => (stderr += b));
        p.on("error", reject);
        p.on("close", (code) => resolve({ command_id: req.command_id, exit_code: code, stdout, stderr }));
      });
    },
  } as unknown as RemoteRunnerSession;
}

/** What is under `prefix`, committed or not (S3: objects; Azure: blobs including uncommitted ones). */
async function leftUnder(store: Store, prefix: string): Promise<string[]> {
  if (store === "gcs")
    return [...gcs.objectNames(), ...gcs.pendingUploads()].filter((n) => n.startsWith(`mpart/${prefix}`));
  if (store === "azure") {
    const names: string[] = [];
    const c = BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("mpart");
    for await (const b of c.listBlobsFlat({ prefix, includeUncommitedBlobs: true })) names.push(b.name);
    return names;
  }
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  const list = await client.send(new ListObjectsV2Command({ Bucket: "mpart", Prefix: prefix }));
  client.destroy();
  return (list.Contents ?? []).map((o) => o.Key!);
}

const run = (store: Store, prefix: string, mode: "direct" | "stream", source: ArtifactSource) =>
  exportArtifact({
    providerId: "test",
    target: targetOf(store, prefix, mode),
    env: env(),
    source,
    request: { path: "big.bin", recursive: false },
    path: file,
  });

const partRequest = (store: Store) => (store === "azure" ? /^PUT .*comp=block&/ : /^PUT .*partNumber=/);

describe.each(["s3", "r2", "azure", "gcs"] as const)("multipart export to %s", (store) => {
  // Direct paths: the one-process uploader where python3 is (the host here), the portable script elsewhere.
  const paths = [
    ["direct from the host", "direct", () => hostArtifactSource(), "python"],
    [
      "direct from a sandbox",
      "direct",
      () => sessionArtifactSource(hostRunSession([]), { tmpDir: work }),
      "python",
    ],
    [
      "direct from a sandbox without python3",
      "direct",
      () => sessionArtifactSource(hostRunSession([], noPython), { tmpDir: work }),
      "curl",
    ],
    ["stream", "stream", () => hostArtifactSource(), "host"],
  ] as const;
  const uploaderOf = (agent: string) =>
    agent.startsWith("roder-runner-parts/") ? "python" : agent.startsWith("curl/") ? "curl" : "host";

  for (const [name, mode, source, uploader] of paths) {
    it(`${name}: three parts, each with its Content-MD5, the stored bytes' sha256 checked`, async () => {
      const proxy = proxyOf(store);
      const before = proxy.seen.length;
      const prefix = `ok-${mode}-${name.length}`;
      const r = await run(store, prefix, mode, source());
      expect(r.metadata).toMatchObject({ size: SIZE, sha256: expected, transfer: mode, parts: 3 });
      const parts = proxy.seen
        .map((l, i) => [l, proxy.agents[i]!] as const)
        .slice(before)
        .filter(([l]) => partRequest(store).test(l));
      expect(parts).toHaveLength(3);
      expect(parts.map(([, agent]) => uploaderOf(agent))).toEqual([uploader, uploader, uploader]);
      const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      expect(got.length).toBe(SIZE);
      expect(sha(got)).toBe(expected);
      expect(proxy.openUploads()).toEqual([]);
    });
  }

  for (const [name, mode, source] of paths)
    for (const fault of ["a part answered 500", "a connection reset mid-part"] as const) {
      it(`${name}: ${fault} leaves no object and no open upload`, async () => {
        const proxy = proxyOf(store);
        const prefix = `fail-${mode}-${name.length}-${fault.length}`;
        // Every try of the second part fails (more than the retries), the others go through.
        proxy.fail({
          match: new RegExp(
            `^PUT /[^?]*${prefix}.*${store === "azure" ? "blockid=cm9kZXItcGFydC0wMDAwMDI" : "partNumber=2&"}`,
          ),
          ...(fault === "a part answered 500" ? { status: 500 } : { reset: true }),
          times: 10,
        });
        const e = await run(store, prefix, mode, source()).catch((x: unknown) => x);
        expect(RunnerError.isInstance(e), String(e)).toBe(true);
        expect((e as Error).message).not.toMatch(/X-Amz-Signature|sig=/);
        expect(await leftUnder(store, `${prefix}/`)).toEqual([]);
        expect(proxy.openUploads()).toEqual([]);
        if (store !== "azure")
          expect(
            proxy.seen.some((l) => l.startsWith("DELETE") && l.includes(prefix) && l.includes("uploadId=")),
          ).toBe(true);
      });
    }

  it("a part answered 500 once is retried and the export completes", async () => {
    const proxy = proxyOf(store);
    const prefix = "retry-once";
    proxy.fail({
      match: new RegExp(`^PUT /[^?]*${prefix}.*${store === "azure" ? "comp=block" : "partNumber=3&"}`),
      status: 503,
      times: 1,
    });
    const r = await run(store, prefix, "direct", sessionArtifactSource(hostRunSession([]), { tmpDir: work }));
    const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
    expect(sha(got)).toBe(expected);
    expect(proxy.openUploads()).toEqual([]);
  });
});

describe("multipart export safety", () => {
  it("signed part URLs reach the sandbox in the command's environment, never its argv", async () => {
    const seen: RunnerCommandRequestInput[] = [];
    await run("s3", "argv", "direct", sessionArtifactSource(hostRunSession(seen), { tmpDir: work }));
    const upload = seen.find((r) => (r.env ?? []).some(([k]) => k.startsWith("RODER_PART_URL_")));
    expect(upload).toBeDefined();
    expect(upload!.env!.filter(([k]) => k.startsWith("RODER_PART_URL_"))).toHaveLength(3);
    for (const r of seen) expect(JSON.stringify(r.args ?? [])).not.toMatch(/X-Amz-Signature|S3RVER/);
    // No long-lived credential: the environment holds signed URLs only.
    expect(JSON.stringify(upload!.env)).not.toContain('S3RVER"');
  });

  it("a sandbox with a proxy configured sends its parts with curl, which honours it", async () => {
    // https_proxy does not apply to the store's http:// URLs: curl goes direct, python3 is not used.
    const before = s3proxy.seen.length;
    const session = hostRunSession([], process.env.PATH, { https_proxy: "http://127.0.0.1:9" });
    await run("s3", "proxied", "direct", sessionArtifactSource(session, { tmpDir: work }));
    const agents = s3proxy.agents
      .slice(before)
      .filter((_, i) => /partNumber=/.test(s3proxy.seen[before + i]!));
    expect(agents).toHaveLength(3);
    for (const a of agents) expect(a).toMatch(/^curl\//);
  });

  it("a part whose bytes differ from the MD5 the store answers is refused before anything is committed", async () => {
    // A store that ignores Content-MD5 (s3rver): the host compares each part's ETag with the MD5 sent.
    const honest = hostArtifactSource();
    const lying: ArtifactSource = {
      ...honest,
      uploadParts: async (f, job) => {
        const r = await honest.uploadParts!(f, job);
        return {
          ...r,
          parts: r.parts.map((p, i) => (i === 1 ? { ...p, md5Base64: "AAAAAAAAAAAAAAAAAAAAAA==" } : p)),
        };
      },
    };
    const e = await run("s3", "etag-check", "direct", lying).catch((x: unknown) => x);
    expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("checksum_mismatch");
    expect(await leftUnder("s3", "etag-check/")).toEqual([]);
    expect(s3proxy.openUploads()).toEqual([]);
  });

  it("a file smaller than a part keeps the single PUT", async () => {
    const small = join(work, "small.bin");
    writeFileSync(small, Buffer.alloc(1024 * 1024, 7));
    const before = s3proxy.seen.length;
    const r = await exportArtifact({
      providerId: "test",
      target: targetOf("s3", "small", "direct"),
      env: env(),
      source: hostArtifactSource(),
      request: { path: "small.bin", recursive: false },
      path: small,
    });
    expect(r.metadata).not.toHaveProperty("parts");
    expect(s3proxy.seen.slice(before).some((l) => l.includes("uploads"))).toBe(false);
    expect(sha(Buffer.from(await (await fetch(r.url!)).arrayBuffer()))).toBe(sha(readFileSync(small)));
  });
});

describe("GCS XML multipart through signed URLs (the stand-in as GCS documents it)", () => {
  const signer = (method: string, key: string, query: Record<string, string>) =>
    gcsSignedUrl({
      method,
      origin: gcs.endpoint,
      bucket: "mpart",
      key,
      query,
      seconds: 600,
      email: gcs.serviceAccountKey.client_email!,
      privateKey: gcs.serviceAccountKey.private_key!,
    });
  const initiate = async (key: string) => {
    const r = await fetch(signer("POST", key, { uploads: "" }), { method: "POST" });
    return /<UploadId>([^<]+)<\/UploadId>/.exec(await r.text())![1]!;
  };
  const md5 = (b: Buffer) => createHash("md5").update(b).digest();

  it("refuses a part whose Content-MD5 differs, a small part that is not the last, and an unsigned change", async () => {
    const id = await initiate("rules/x");
    const small = Buffer.alloc(1024, 1);
    const put = (n: number, body: Buffer, contentMd5: string) =>
      fetch(signer("PUT", "rules/x", { partNumber: String(n), uploadId: id }), {
        method: "PUT",
        body,
        headers: { "content-md5": contentMd5 },
      });
    const bad = await put(1, small, md5(Buffer.alloc(1024, 2)).toString("base64"));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("<Code>BadDigest</Code>");
    for (const n of [1, 2]) {
      const ok = await put(n, small, md5(small).toString("base64"));
      expect(ok.headers.get("etag")).toBe(`"${md5(small).toString("hex")}"`);
    }
    const parts = [1, 2]
      .map((n) => `<Part><PartNumber>${n}</PartNumber><ETag>"${md5(small).toString("hex")}"</ETag></Part>`)
      .join("");
    const complete = await fetch(signer("POST", "rules/x", { uploadId: id }), {
      method: "POST",
      body: `<CompleteMultipartUpload>${parts}</CompleteMultipartUpload>`,
    });
    expect(complete.status).toBe(400);
    expect(await complete.text()).toContain("<Code>EntityTooSmall</Code>");
    // A signature for another upload id does not open this one.
    const forged = new URL(signer("DELETE", "rules/x", { uploadId: "other" }));
    forged.searchParams.set("uploadId", id);
    expect((await fetch(forged, { method: "DELETE" })).status).toBe(403);
    expect((await fetch(signer("DELETE", "rules/x", { uploadId: id }), { method: "DELETE" })).status).toBe(
      204,
    );
    expect(gcs.pendingUploads()).not.toContain("mpart/rules/x");
    expect(gcs.objectNames()).not.toContain("mpart/rules/x");
  });
});
