import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import type { RunnerMount } from "@roder/runner-contract";
import {
  type AzuriteEmulator,
  type BoxStandIn,
  type GcsStandIn,
  type S3Emulator,
  startAzurite,
  startBoxStandIn,
  startGcsStandIn,
  startS3Emulator,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// Every bucket kind × read-only / read-write, mounted for real on the local runner (rclone + FUSE on the
// host, the command in a bubblewrap sandbox): S3 and R2 against s3rver, GCS against the testkit's GCS stand-in,
// Azure against Azurite, Box against the Box stand-in behind its intercepting proxy. Each store is seeded and
// read back from its own side (SDK or stand-in), never through rclone.
let s3: S3Emulator;
let az: AzuriteEmulator;
let gcs: GcsStandIn;
let box: BoxStandIn;
let s3c: S3Client;

beforeAll(async () => {
  [s3, az, gcs, box] = await Promise.all([
    startS3Emulator({ buckets: ["matrix"] }),
    startAzurite(),
    startGcsStandIn(),
    startBoxStandIn(),
  ]);
  gcs.createBucket("matrix");
  await BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient("matrix").create();
  box.mkdir("matrix");
  s3c = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}, 90_000);
afterAll(async () => {
  s3c?.destroy();
  await Promise.all([s3?.stop(), az?.stop(), gcs?.stop(), box?.stop()]);
});

interface Kind {
  kind: RunnerMount["intent"]["kind"];
  uri: (dir: string) => string;
  env: () => Record<string, string>;
  put: (dir: string, name: string, body: string) => Promise<void>;
  get: (dir: string, name: string) => Promise<string | undefined>;
}

const s3Like = (kind: "s3" | "r2", scheme: string): Kind => ({
  kind,
  uri: (dir) => `${scheme}://matrix/${kind}/${dir}`,
  env: () => ({
    RODER_SECRET_M_ACCESS_KEY_ID: s3.accessKeyId,
    RODER_SECRET_M_SECRET_ACCESS_KEY: s3.secretAccessKey,
    RODER_SECRET_M_ENDPOINT: s3.endpoint,
  }),
  put: async (dir, name, body) => {
    await s3c.send(new PutObjectCommand({ Bucket: "matrix", Key: `${kind}/${dir}/${name}`, Body: body }));
  },
  get: async (dir, name) => {
    const r = await s3c.send(new GetObjectCommand({ Bucket: "matrix", Key: `${kind}/${dir}/${name}` }));
    return r.Body!.transformToString();
  },
});

const KINDS: Kind[] = [
  s3Like("s3", "s3"),
  s3Like("r2", "r2"),
  {
    kind: "gcs",
    uri: (dir) => `gs://matrix/gcs/${dir}`,
    env: () => ({
      RODER_SECRET_M_SERVICE_ACCOUNT_JSON: JSON.stringify(gcs.serviceAccountKey),
      RODER_SECRET_M_ENDPOINT: `${gcs.endpoint}/storage/v1/`,
    }),
    put: async (dir, name, body) => gcs.putObject("matrix", `gcs/${dir}/${name}`, body, "text/plain"),
    get: async (dir, name) => {
      const r = await fetch(
        `${gcs.endpoint}/storage/v1/b/matrix/o/${encodeURIComponent(`gcs/${dir}/${name}`)}?alt=media`,
      );
      return r.ok ? r.text() : undefined;
    },
  },
  {
    kind: "azure_blob",
    uri: (dir) => `azure://devstoreaccount1/matrix/azure/${dir}`,
    env: () => ({ RODER_SECRET_M_CONNECTION_STRING: az.connectionString }),
    put: async (dir, name, body) => {
      await BlobServiceClient.fromConnectionString(az.connectionString)
        .getContainerClient("matrix")
        .getBlockBlobClient(`azure/${dir}/${name}`)
        .upload(body, Buffer.byteLength(body));
    },
    get: async (dir, name) =>
      (
        await BlobServiceClient.fromConnectionString(az.connectionString)
          .getContainerClient("matrix")
          .getBlockBlobClient(`azure/${dir}/${name}`)
          .downloadToBuffer()
      ).toString("utf8"),
  },
  {
    kind: "box_storage",
    uri: (dir) => `box://${box.mkdir(`matrix/box/${dir}`)}`,
    env: () => ({
      RODER_SECRET_M_TOKEN_JSON: box.tokenJson(),
      RODER_SECRET_M_TOKEN_URL: box.tokenUrl,
      RODER_SECRET_M_HTTPS_PROXY: box.proxyUrl,
      RODER_SECRET_M_CA_CERT_FILE: box.caCertFile,
    }),
    put: async (dir, name, body) => {
      box.putFile(`matrix/box/${dir}/${name}`, body);
    },
    get: async (dir, name) => box.readFile(`matrix/box/${dir}/${name}`)?.toString("utf8"),
  },
];

const session = (k: Kind, dir: string, readOnly: boolean) =>
  createLocalProvider({ env: k.env() }).createSession({
    id: `matrix-${k.kind}`,
    provider_id: "unix-local",
    config: { isolation: "bwrap" },
    default_manifest: {
      entries: [],
      mounts: [
        {
          name: "b",
          path: "b",
          read_only: readOnly,
          intent: { kind: k.kind, uri: k.uri(dir), credentials: { id: "m" } },
        },
      ],
    },
  });

describe("bucket-kind matrix on the local runner (S3, R2, GCS, Azure, Box × read-only, read-write)", () => {
  for (const k of KINDS) {
    it(`${k.kind} read-only: the store's object is seen, writes are refused and reach nothing`, async () => {
      await k.put("ro", "seed.txt", `seeded in ${k.kind}\n`);
      const s = await session(k, "ro", true);
      try {
        const r = await s.runCommand({
          command_id: "ro",
          program: "sh",
          args: ["-c", "cat b/seed.txt; echo x > b/new.txt 2>/dev/null && echo wrote || echo refused"],
        });
        expect(r.stdout).toBe(`seeded in ${k.kind}\nrefused\n`);
      } finally {
        await s.close();
      }
      expect(await k.get("ro", "new.txt").catch(() => undefined)).toBeUndefined();
    }, 60_000);

    it(`${k.kind} read-write: a write followed at once by close is in the store`, async () => {
      const s = await session(k, "rw", false);
      try {
        const r = await s.runCommand({
          command_id: "rw",
          program: "sh",
          args: ["-c", `printf 'written to ${k.kind}\\n' > b/out.txt && seq 1 20000 > b/seq.txt`],
        });
        expect(r.exit_code, r.stderr).toBe(0);
      } finally {
        await s.close();
      }
      expect(await k.get("rw", "out.txt")).toBe(`written to ${k.kind}\n`);
      expect(await k.get("rw", "seq.txt")).toBe(
        `${Array.from({ length: 20000 }, (_, i) => i + 1).join("\n")}\n`,
      );
    }, 60_000);
  }
});
