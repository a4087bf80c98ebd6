import { generateKeyPairSync } from "node:crypto";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { MissingSecretError, type RunnerMount } from "@roder/runner-contract";
import { planRcloneMount, resolveBucketCredentials } from "@roder/runner-storage";
import { type AzuriteEmulator, type S3Emulator, startAzurite, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GcsMini, startGcsMini } from "../../storage/src/__fixtures__/gcs-mini.js";
import { createLocalProvider } from "./local-provider.js";

let s3: S3Emulator;
let az: AzuriteEmulator;
let client: S3Client;
let gcs: GcsMini;
const gcsKey = generateKeyPairSync("rsa", { modulusLength: 2048 })
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString();
const env = () => ({
  RODER_SECRET_GS_SERVICE_ACCOUNT_JSON: JSON.stringify({
    type: "service_account",
    client_email: "mounter@roder-test.iam.gserviceaccount.com",
    private_key: gcsKey,
    token_uri: `${gcs.endpoint}/token`,
  }),
  RODER_SECRET_GS_ENDPOINT: `${gcs.endpoint}/storage/v1/`,
  RODER_SECRET_DATA_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_DATA_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_DATA_ENDPOINT: s3.endpoint,
  RODER_SECRET_R2DATA_ENDPOINT: s3.endpoint,
  RODER_SECRET_R2DATA_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_R2DATA_SECRET_ACCESS_KEY: "S3RVER",
  RODER_SECRET_AZ_CONNECTION_STRING: az.connectionString,
});

beforeAll(async () => {
  [s3, az, gcs] = await Promise.all([
    startS3Emulator({ buckets: ["datasets", "outputs"] }),
    startAzurite(),
    startGcsMini(),
  ]);
  gcs.objects.set("gbucket/in/notes.txt", {
    data: Buffer.from("from gcs"),
    contentType: "text/plain",
    metadata: {},
    updated: new Date().toISOString(),
  });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  await client.send(new PutObjectCommand({ Bucket: "datasets", Key: "train/rows.csv", Body: "a,b\n1,2\n" }));
  await BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("blobs").create();
  await BlobServiceClient.fromConnectionString(az.connectionString)
    .getContainerClient("blobs")
    .getBlockBlobClient("in/hello.txt")
    .upload("from azure", 10);
}, 60_000);
afterAll(async () => {
  client?.destroy();
  await Promise.all([s3?.stop(), az?.stop(), gcs?.stop()]);
});

const provider = () => createLocalProvider({ env: env() });
const dest = (mounts: RunnerMount[], isolation: "none" | "bwrap" = "none") => ({
  id: "m",
  provider_id: "unix-local",
  config: { isolation },
  default_manifest: { entries: [], mounts },
});

describe("unix-local bucket mounts (rclone + FUSE)", () => {
  for (const [kind, id, uri] of [
    ["s3", "data", "s3://datasets/train"],
    ["r2", "r2data", "r2://datasets/train"],
  ] as const) {
    it(`${kind}: a read-only mount shows the bucket's objects and refuses writes`, async () => {
      const s = await provider().createSession(
        dest(
          [{ name: "d", path: "data", read_only: true, intent: { kind, uri, credentials: { id } } }],
          "bwrap",
        ),
      );
      try {
        const r = await s.runCommand({
          command_id: "c",
          program: "sh",
          args: ["-c", "cat data/rows.csv; echo x > data/new.txt 2>/dev/null && echo wrote || echo refused"],
        });
        expect(r.stdout).toBe("a,b\n1,2\nrefused\n");
        expect(new TextDecoder().decode((await s.readFile({ path: "data/rows.csv" })).contents)).toBe(
          "a,b\n1,2\n",
        );
      } finally {
        await s.close();
      }
    });
  }

  it("s3: a file written in the sandbox is in the bucket after close (uploads drained), and the reverse", async () => {
    const s = await provider().createSession(
      dest([
        {
          name: "o",
          path: "out",
          read_only: false,
          intent: { kind: "s3", uri: "s3://outputs/run1", credentials: { id: "data" } },
        },
      ]),
    );
    await s.runCommand({
      command_id: "w",
      program: "sh",
      args: ["-c", "head -c 2000000 /dev/urandom > out/blob.bin; echo done > out/status.txt"],
    });
    const local = (await s.readFile({ path: "out/blob.bin" })).contents;
    await client.send(new PutObjectCommand({ Bucket: "outputs", Key: "run1/from-sdk.txt", Body: "sdk" }));
    await new Promise((r) => setTimeout(r, 1500));
    const seen = await s.runCommand({ command_id: "r", program: "cat", args: ["out/from-sdk.txt"] });
    expect(seen.stdout).toBe("sdk");
    await s.close();
    const got = await client.send(new GetObjectCommand({ Bucket: "outputs", Key: "run1/blob.bin" }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.from(local))).toBe(true);
    const status = await client.send(new GetObjectCommand({ Bucket: "outputs", Key: "run1/status.txt" }));
    expect(await status.Body!.transformToString()).toBe("done\n");
  });

  for (const isolation of ["none", "bwrap"] as const)
    it(`s3 read-write (isolation ${isolation}, host network): a command cannot drive rclone's remote control`, async () => {
      const s = await provider().createSession({
        ...dest(
          [
            {
              name: "o",
              path: "out",
              read_only: false,
              intent: { kind: "s3", uri: "s3://outputs/rc", credentials: { id: "data" } },
            },
          ],
          isolation,
        ),
        config: { isolation, network: "host" },
      });
      try {
        // The attacker is handed what it would otherwise scan for: the rc port of the session's own rclone.
        const { readdirSync, readFileSync } = await import("node:fs");
        const ws = (s.state().metadata as { host_root: string }).host_root;
        const rc = readdirSync("/proc")
          .filter((n) => /^\d+$/.test(n))
          .map((n) => {
            try {
              return readFileSync(`/proc/${n}/cmdline`, "utf8").split("\0");
            } catch {
              return [];
            }
          })
          .find((argv) => argv[0]?.endsWith("rclone") && argv.includes(`${ws}/out`));
        const addr = rc?.[rc.indexOf("--rc-addr") + 1];
        expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
        const r = await s.runCommand({
          command_id: "rc",
          program: "sh",
          args: [
            "-c",
            `for m in config/dump core/command operations/copyfile options/get core/pid; do printf '%s=' $m; curl -s -m 5 -X POST -H 'content-type: application/json' -d '{}' -w '%{http_code}' -o body.$$ http://${addr}/$m; echo; cat body.$$; echo; done; rm -f body.$$`,
          ],
        });
        for (const m of ["config/dump", "core/command", "operations/copyfile", "options/get", "core/pid"])
          expect(r.stdout, m).toMatch(new RegExp(`${m}=(401|403)`));
        expect(r.stdout).not.toContain("S3RVER");
      } finally {
        await s.close();
      }
    });

  it("azure_blob: read-only and read-write mounts against Azurite", async () => {
    const s = await provider().createSession(
      dest([
        {
          name: "in",
          path: "in",
          read_only: true,
          intent: { kind: "azure_blob", uri: "azure://devstoreaccount1/blobs/in", credentials: { id: "az" } },
        },
        {
          name: "out",
          path: "out",
          read_only: false,
          intent: {
            kind: "azure_blob",
            uri: "azure://devstoreaccount1/blobs/out",
            credentials: { id: "az" },
          },
        },
      ]),
    );
    const r = await s.runCommand({
      command_id: "c",
      program: "sh",
      args: ["-c", "cat in/hello.txt; echo result > out/r.txt"],
    });
    expect(r.stdout).toBe("from azure");
    await s.close();
    const blob = BlobServiceClient.fromConnectionString(az.connectionString)
      .getContainerClient("blobs")
      .getBlockBlobClient("out/r.txt");
    expect((await blob.downloadToBuffer()).toString()).toBe("result\n");
  });

  it("gcs: read-only and read-write mounts (service-account JSON, minimal GCS server)", async () => {
    const s = await provider().createSession(
      dest(
        [
          {
            name: "in",
            path: "in",
            read_only: true,
            intent: { kind: "gcs", uri: "gs://gbucket/in", credentials: { id: "gs" } },
          },
          {
            name: "out",
            path: "out",
            read_only: false,
            intent: { kind: "gcs", uri: "gs://gbucket/out", credentials: { id: "gs" } },
          },
        ],
        "bwrap",
      ),
    );
    try {
      const r = await s.runCommand({
        command_id: "c",
        program: "sh",
        args: [
          "-c",
          "cat in/notes.txt; echo; echo x > in/w.txt 2>/dev/null && echo wrote || echo refused; head -c 300000 /dev/zero | tr '\\0' g > out/g.txt",
        ],
      });
      expect(r.stdout).toBe("from gcs\nrefused\n");
    } finally {
      await s.close();
    }
    const got = gcs.objects.get("gbucket/out/g.txt");
    expect(got?.data.length).toBe(300000);
    expect(got?.data.toString().replace(/g/g, "")).toBe("");
    expect(gcs.objects.has("gbucket/in/w.txt")).toBe(false);
  });

  it("exports artifacts from a session (direct and stream), file and directory", async () => {
    for (const mode of ["direct", "stream"] as const) {
      const s = await provider().createSession({
        id: "a",
        provider_id: "unix-local",
        config: {
          artifacts: {
            uri: "s3://outputs/artifacts",
            credentials: { id: "data" },
            endpoint: s3.endpoint,
            mode,
          },
        },
        default_manifest: { entries: [], mounts: [] },
      });
      try {
        await s.writeFile({ path: "dist/app.bin", contents: new Uint8Array([9, 8, 7]) });
        const file = await s.exportArtifact({ path: "dist/app.bin", recursive: false });
        expect([...new Uint8Array(await (await fetch(file.url!)).arrayBuffer())]).toEqual([9, 8, 7]);
        expect(file.metadata).toMatchObject({ size: 3, transfer: mode, bucket: "outputs" });
        // The pinned descriptor is read, but the object is named after the file.
        expect(file.artifact_id).toMatch(/\/app\.bin$/);
        const dir = await s.exportArtifact({ path: "dist", recursive: true });
        expect(dir.artifact_id).toMatch(/^s3:\/\/outputs\/artifacts\/.+\/dist\.tar\.gz$/);
        await expect(s.exportArtifact({ path: "../etc", recursive: true })).rejects.toThrow(/refused/);
      } finally {
        await s.close();
      }
    }
  });

  it("bwrap: exports a file and a directory of the sandbox's own /tmp (copied out through the sandbox)", async () => {
    const s = await provider().createSession({
      id: "a",
      provider_id: "unix-local",
      config: {
        isolation: "bwrap",
        network: "host",
        artifacts: { uri: "s3://outputs/sandbox-tmp", credentials: { id: "data" }, endpoint: s3.endpoint },
      },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      await s.writeFile({ path: "/tmp/out/app.bin", contents: new Uint8Array([1, 2, 3, 250]) });
      await s.runCommand({ command_id: "mk", program: "sh", args: ["-c", "echo two > /tmp/out/b.txt"] });
      const file = await s.exportArtifact({ path: "/tmp/out/app.bin", recursive: false });
      expect([...new Uint8Array(await (await fetch(file.url!)).arrayBuffer())]).toEqual([1, 2, 3, 250]);
      expect(file.artifact_id).toMatch(/\/app\.bin$/);
      const dir = await s.exportArtifact({ path: "/tmp/out", recursive: true });
      expect(dir.artifact_id).toMatch(/\/out\.tar\.gz$/);
      const tgz = Buffer.from(await (await fetch(dir.url!)).arrayBuffer());
      const { execFileSync } = await import("node:child_process");
      const listing = execFileSync("tar", ["-tz"], { input: tgz }).toString();
      expect(listing).toMatch(/app\.bin/);
      expect(listing).toMatch(/b\.txt/);
      await expect(s.exportArtifact({ path: "/tmp/nothing-here", recursive: false })).rejects.toThrow(
        /no such file/,
      );
    } finally {
      await s.close();
    }
  });

  it("exports to r2, gcs and azure_blob from a session through both paths", async () => {
    await BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("arts").create();
    const targets = {
      r2: {
        uri: "r2://outputs/r2art",
        credentials: { id: "r2data" },
        endpoint: s3.endpoint,
        force_path_style: true,
      },
      gcs: { uri: "gs://gbucket/arts", credentials: { id: "gs" }, endpoint: gcs.endpoint },
      azure_blob: { uri: "azure://devstoreaccount1/arts/x", credentials: { id: "az" } },
    };
    for (const [kind, artifacts] of Object.entries(targets)) {
      for (const mode of ["direct", "stream"] as const) {
        const s = await provider().createSession({
          id: "a",
          provider_id: "unix-local",
          config: { artifacts: { ...artifacts, mode } },
          default_manifest: { entries: [], mounts: [] },
        });
        try {
          await s.writeFile({ path: "o/r.bin", contents: new Uint8Array([1, 2, 3, 250]) });
          const r = await s.exportArtifact({ path: "o/r.bin", recursive: false });
          expect(r.artifact_id.startsWith(artifacts.uri)).toBe(true);
          expect(r.metadata, kind).toMatchObject({ size: 4, transfer: mode });
          expect([...new Uint8Array(await (await fetch(r.url!)).arrayBuffer())], `${kind} ${mode}`).toEqual([
            1, 2, 3, 250,
          ]);
        } finally {
          await s.close();
        }
      }
    }
  });

  it("refuses a bucket mount whose secret is missing before creating anything, naming the variables", async () => {
    const e = await createLocalProvider({ env: {} })
      .validateDestination(
        dest([
          {
            name: "d",
            path: "data",
            read_only: true,
            intent: { kind: "s3", uri: "s3://datasets", credentials: { id: "data" } },
          },
        ]),
      )
      .catch((x) => x);
    expect(MissingSecretError.isInstance(e)).toBe(true);
    expect((e as Error).message).toContain("RODER_SECRET_DATA_ACCESS_KEY_ID");
  });

  it("box_storage and gcs plans keep credentials in the mount process's environment only", () => {
    const box = planRcloneMount({
      mount: {
        name: "b",
        path: "box",
        read_only: true,
        intent: { kind: "box_storage", uri: "box://12345", credentials: { id: "box" } },
      },
      credentials: resolveBucketCredentials(
        "box_storage",
        { id: "box" },
        { RODER_SECRET_BOX_ACCESS_TOKEN: "box-token-canary" },
      ),
      mountPath: "/w/box",
    });
    expect(box.env).toMatchObject({
      RCLONE_CONFIG_RODER_TYPE: "box",
      RCLONE_CONFIG_RODER_ACCESS_TOKEN: "box-token-canary",
      RCLONE_CONFIG_RODER_ROOT_FOLDER_ID: "12345",
    });
    expect(box.args.join(" ")).not.toContain("box-token-canary");
    expect(box.args).toContain("--read-only");
    expect(box.secretEnv).toEqual(["RCLONE_CONFIG_RODER_ACCESS_TOKEN"]);
    const gcs = planRcloneMount({
      mount: {
        name: "g",
        path: "g",
        read_only: false,
        intent: { kind: "gcs", uri: "gs://bucket-x/p", credentials: { id: "g" } },
      },
      credentials: resolveBucketCredentials(
        "gcs",
        { id: "g" },
        { RODER_SECRET_G_SERVICE_ACCOUNT_JSON: '{"type":"service_account","private_key":"gcs-canary"}' },
      ),
      mountPath: "/w/g",
      rcPort: 5572,
    });
    expect(gcs.env.RCLONE_CONFIG_RODER_TYPE).toBe("google cloud storage");
    expect(gcs.args.join(" ")).not.toContain("gcs-canary");
    expect(gcs.args).toEqual(
      expect.arrayContaining(["--vfs-cache-mode", "writes", "--rc-addr", "127.0.0.1:5572"]),
    );
    expect(gcs.credentialsInSandbox).toBe(true);
  });
});
