import { readdirSync, readFileSync } from "node:fs";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import {
  CancelledError,
  type RunnerExportProgress,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// An export through the server reports its progress to the client: `Accept: application/x-ndjson` turns the
// answer into progress frames and then the result (or a typed error frame).
const TOKEN = "progress-token-5d1e";
let s3: S3Emulator;
let server: RunnerServer;
let url = "";
const SIZE = 12 * 1024 * 1024 + 3;

beforeAll(async () => {
  s3 = await startS3Emulator({ buckets: ["out"] });
  server = createRunnerServer({
    provider: createLocalProvider({
      env: {
        PATH: process.env.PATH,
        RODER_SECRET_OUT_ACCESS_KEY_ID: "S3RVER",
        RODER_SECRET_OUT_SECRET_ACCESS_KEY: "S3RVER",
      },
    }),
    token: TOKEN,
    allowedEndpoints: [s3.endpoint],
  });
  url = (await server.listen(0)).url;
}, 60_000);
afterAll(async () => {
  await server?.close();
  await s3?.stop();
});

const provider = () => createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
const session = (artifacts: boolean) =>
  provider().createSession({
    config: {
      backend_config: {
        isolation: "none",
        ...(artifacts
          ? {
              artifacts: {
                uri: "s3://out/x",
                credentials: { id: "out" },
                endpoint: s3.endpoint,
                force_path_style: true,
                mode: "direct",
                part_size_mib: 5,
                parallelism: 2,
              },
            }
          : {}),
      },
    },
  });

describe("export progress through the HTTP server", () => {
  it("arrives as frames: phases in order, parts as they land, then the result", async () => {
    const s = await session(true);
    try {
      const bytes = new Uint8Array(SIZE);
      for (let i = 0; i < SIZE; i++) bytes[i] = (i * 31) & 0xff;
      await s.writeFile({ path: "big.bin", contents: bytes });
      const events: RunnerExportProgress[] = [];
      const r = await s.exportArtifact({ path: "big.bin" }, { onProgress: (p) => events.push(p) });
      expect(r.metadata).toMatchObject({ size: SIZE, parts: 3 });
      expect(events[0]?.phase).toBe("preparing");
      expect(events.at(-1)).toEqual({ phase: "done", bytes: SIZE, total: SIZE });
      // At least one value strictly between nothing and everything: the client saw the transfer move.
      expect(events.some((e) => e.bytes > 0 && e.bytes < SIZE)).toBe(true);
      for (let i = 1; i < events.length; i++)
        expect(events[i]!.bytes).toBeGreaterThanOrEqual(events[i - 1]!.bytes);
      const got = Buffer.from(await (await fetch(r.url!)).arrayBuffer());
      expect(got.length).toBe(SIZE);
      // Without a listener the answer is the plain JSON result, as before.
      const plain = await s.exportArtifact({ path: "big.bin" });
      expect(plain.metadata).toMatchObject({ size: SIZE });
    } finally {
      await s.close();
    }
  }, 120_000);

  it("a failure after the stream began is the same typed error", async () => {
    const s = await session(false);
    try {
      await s.writeFile({ path: "a.txt", contents: "x" });
      const events: RunnerExportProgress[] = [];
      const e = await s
        .exportArtifact({ path: "a.txt" }, { onProgress: (p) => events.push(p) })
        .catch((x) => x);
      expect(e).toBeInstanceOf(UnsupportedCapabilityError);
      expect((e as UnsupportedCapabilityError).capability).toBe("artifact_export");
      expect(events.map((p) => p.phase)).not.toContain("done");
    } finally {
      await s.close();
    }
  });

  it("the raw protocol: NDJSON frames only when asked for", async () => {
    const s = await session(true);
    try {
      await s.writeFile({ path: "t.txt", contents: "hello" });
      const id = s.state().session_id;
      const res = await fetch(`${url}/sessions/${id}/artifacts`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/json",
          accept: "application/x-ndjson",
        },
        body: JSON.stringify({ path: "t.txt", recursive: false }),
      });
      expect(res.headers.get("content-type")).toBe("application/x-ndjson");
      const frames = (await res.text())
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; phase?: string });
      expect(frames[0]).toMatchObject({ type: "progress", phase: "preparing" });
      expect(frames.at(-1)?.type).toBe("result");
    } finally {
      await s.close();
    }
  });

  it("a client that goes away mid-export cancels it: the part uploads stop, nothing lands under the key", async () => {
    const s = await session(true);
    try {
      const big = 64 * 1024 * 1024;
      await s.writeFile({ path: "huge.bin", contents: new Uint8Array(big).fill(7) });
      const abort = new AbortController();
      const e = await s
        .exportArtifact(
          { path: "huge.bin" },
          {
            signal: abort.signal,
            onProgress: (p) => {
              if (p.phase === "uploading" && p.bytes > 0) abort.abort();
            },
          },
        )
        .catch((x) => x);
      expect(e).toBeInstanceOf(CancelledError);
      // The part script (and the curls it runs) is killed on the server's side, not left to finish.
      const scriptsLeft = () =>
        readdirSync("/proc")
          .filter((d) => /^\d+$/.test(d))
          .filter((d) => {
            try {
              return readFileSync(`/proc/${d}/cmdline`, "utf8").includes("huge.bin");
            } catch {
              return false;
            }
          });
      for (let i = 0; i < 100 && scriptsLeft().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(scriptsLeft()).toEqual([]);
      const client = new S3Client({
        endpoint: s3.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      });
      // Had the export gone on, its object would be complete within seconds (s3rver, 64 MiB): none appears.
      const landed = async () =>
        ((await client.send(new ListObjectsV2Command({ Bucket: "out", Prefix: "x/" }))).Contents ?? [])
          .map((o) => o.Key)
          .filter((k) => k?.endsWith("huge.bin"));
      for (let i = 0; i < 40; i++) {
        expect(await landed()).toEqual([]);
        await new Promise((r) => setTimeout(r, 250));
      }
      client.destroy();
      // The session goes on.
      expect((await s.runCommand({ program: "true" })).exit_code).toBe(0);
    } finally {
      await s.close();
    }
  }, 120_000);
});
