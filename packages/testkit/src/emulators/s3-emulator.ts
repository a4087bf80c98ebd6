import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binOf, spawnEmulator } from "./spawn-emulator.js";

export interface S3Emulator {
  endpoint: string;
  port: number;
  pid: number;
  region: "us-east-1";
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: true;
  stop(): Promise<void>;
}

/**
 * s3rver on 127.0.0.1 (an S3-compatible server; R2 tests use it too). Buckets in `buckets` exist at start.
 * Note: s3rver accepts any credentials and verifies no checksum; tests must check stored bytes themselves.
 */
export async function startS3Emulator(opts: { buckets?: string[] } = {}): Promise<S3Emulator> {
  const dir = mkdtempSync(join(tmpdir(), "roder-s3rver-"));
  const buckets = opts.buckets ?? ["test-bucket"];
  const proc = await spawnEmulator({
    name: "s3rver",
    command: process.execPath,
    argv: [
      binOf("s3rver", "s3rver", "npm install -D s3rver@3.7.1"),
      "-d",
      dir,
      "-a",
      "127.0.0.1",
      "-p",
      "0",
      "--silent",
      ...buckets.flatMap((b) => ["--configure-bucket", b]),
    ],
    // s3rver builds continuation tokens with DES, which Node 17+ only has with the legacy provider.
    env: { NODE_OPTIONS: "--openssl-legacy-provider" },
    portPattern: /listening on [\d.]+:(\d+)/,
  });
  return {
    endpoint: `http://127.0.0.1:${proc.port}`,
    port: proc.port,
    pid: proc.pid,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    forcePathStyle: true,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
