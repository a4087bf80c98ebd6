import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createLocalProvider } from "@roder/runner-local";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "mount-server-token-9921";
const SECRET = "server-side-s3-secret-canary";
let s3: S3Emulator;
let server: RunnerServer;
let url = "";
const seen: string[] = [];

beforeAll(async () => {
  s3 = await startS3Emulator({ buckets: ["modal-data"] });
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await client.send(new PutObjectCommand({ Bucket: "modal-data", Key: "train/x.csv", Body: "1,2\n" }));
  client.destroy();
  // The secret lives only in the server's environment (its backend resolves the ref); the client never sees it.
  const serverEnv = {
    RODER_SECRET_DATASET_ACCESS_KEY_ID: "S3RVER",
    RODER_SECRET_DATASET_SECRET_ACCESS_KEY: SECRET,
    RODER_SECRET_DATASET_ENDPOINT: s3.endpoint,
  };
  server = createRunnerServer({
    provider: createLocalProvider({ env: serverEnv }),
    token: TOKEN,
    env: serverEnv,
    onRequest: (e) => seen.push(e.path),
  });
  url = (await server.listen(0)).url;
}, 60_000);
afterAll(async () => {
  await server?.close();
  await s3?.stop();
});

describe("Modal-style cloud-bucket mounts through the HTTP protocol", () => {
  it("mounts a bucket declared in the create request, with the secret resolved by the server from its own env", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const session = await provider.createSession({
      id: "modal",
      provider_id: "http",
      config: {
        mounts: [
          {
            kind: "s3",
            bucket: "modal-data",
            key_prefix: "train/",
            path: "data",
            read_only: true,
            secret: { id: "dataset" },
          },
        ],
      },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const r = await session.runCommand({ command_id: "c", program: "cat", args: ["data/x.csv"] });
      expect(r.stdout).toBe("1,2\n");
      expect(JSON.stringify(session.state())).not.toContain(SECRET);
    } finally {
      await session.close();
    }
  });

  it("answers a mount whose secret the server lacks with a clear error that names the variables, not values", async () => {
    const res = await fetch(`${url}/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        destination_id: "d",
        mounts: [
          { kind: "s3", bucket: "modal-data", path: "d", read_only: true, secret: { id: "unknown-ref" } },
        ],
      }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(424);
    expect(body.error.code).toBe("missing_secret");
    expect(body.error.message).toContain("RODER_SECRET_UNKNOWN_REF_ACCESS_KEY_ID");
    expect(JSON.stringify(body)).not.toContain(SECRET);
  });
});
