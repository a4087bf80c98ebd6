// Artifact export: this project's direct and stream paths against the raw tools, each run in its own process
// so its peak RSS is its own: `curl -T` to a presigned URL (one PUT, one connection) and a raw
// `@aws-sdk/lib-storage` Upload (same part size and parallelism as ours, no integrity). Two networks: loopback
// to s3rver, and through a proxy that caps every connection at CAP_MIB MiB/s, as a real store caps one
// connection, so that parallel parts show. Two stores: s3rver, and a memory store whose multipart completion
// is metadata only as on a real store (bench/memory-s3.js). EXPORT_BENCH_MIB overrides the size (1 GiB; 32
// MiB short).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const short = process.env.BENCH_SHORT === "1";
const MIB = Number(process.env.EXPORT_BENCH_MIB ?? (short ? 32 : 1024));
const CAP_MIB = Number(process.env.EXPORT_BENCH_CAP_MIB ?? 50);
const PART_MIB = 16;
const PARALLEL = 8;
// The stream path holds at most 64 MiB of parts in flight: the raw Upload gets the same queue.
const STREAM_QUEUE = Math.max(1, Math.min(PARALLEL, Math.floor(64 / PART_MIB)));
const mode = process.argv[2];

async function runMode(kind, endpoint, file) {
  const { S3Client, PutObjectCommand } = await import("@aws-sdk/client-s3");
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  let sha256 = null;
  const t = performance.now();
  if (kind === "raw-upload" || kind === "raw-upload-wide") {
    const { Upload } = await import("@aws-sdk/lib-storage");
    await new Upload({
      client,
      params: {
        Bucket: "bench",
        Key: `${kind}/${Date.now()}`,
        Body: createReadStream(file, { highWaterMark: 1 << 20 }),
      },
      queueSize: kind === "raw-upload" ? STREAM_QUEUE : PARALLEL,
      partSize: PART_MIB * 1024 * 1024,
    }).done();
  } else if (kind === "raw-curl") {
    const { getSignedUrl } = await import("@aws-sdk/s3-request-presigner");
    const url = await getSignedUrl(
      client,
      new PutObjectCommand({ Bucket: "bench", Key: `curl/${Date.now()}` }),
      { expiresIn: 900 },
    );
    execFileSync("curl", ["-sS", "-f", "-X", "PUT", "-T", file, url]);
  } else {
    const { exportArtifact, hostArtifactSource, ArtifactTargetConfigSchema } = await import(
      "@roder/runner-storage"
    );
    const target = ArtifactTargetConfigSchema.parse({
      uri: "s3://bench/ours",
      credentials: { id: "bench" },
      endpoint,
      mode: kind === "stream" ? "stream" : "direct",
      part_size_mib: PART_MIB,
      parallelism: PARALLEL,
    });
    const r = await exportArtifact({
      providerId: "bench",
      target,
      env: { RODER_SECRET_BENCH_ACCESS_KEY_ID: "S3RVER", RODER_SECRET_BENCH_SECRET_ACCESS_KEY: "S3RVER" },
      source: hostArtifactSource(),
      request: { path: "data.bin", recursive: false },
      path: file,
    });
    sha256 = r.metadata.sha256;
  }
  const ms = performance.now() - t;
  client.destroy();
  // curl's memory is its own process: report this process's peak (the host's).
  process.stdout.write(JSON.stringify({ ms, rss_mb: process.resourceUsage().maxRSS / 1024, sha256 }));
}

if (mode) {
  await runMode(mode, process.argv[3], process.argv[4]);
} else {
  const { startS3Emulator } = await import("@roder/runner-testkit");
  const { startThrottleProxy } = await import("./throttle-proxy.js");
  const { startMemoryS3 } = await import("./memory-s3.js");
  const s3 = await startS3Emulator({ buckets: ["bench"] });
  const mem = await startMemoryS3();
  const cappedS3 = await startThrottleProxy(s3.endpoint, CAP_MIB * 1024 * 1024);
  const cappedMem = await startThrottleProxy(mem.endpoint, CAP_MIB * 1024 * 1024);
  const dir = mkdtempSync(join(tmpdir(), "roder-export-bench-"));
  const file = join(dir, "data.bin");
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < MIB; i++) {
    chunk.fill(i & 255);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const expected = execFileSync("sha256sum", [file]).toString().split(" ")[0];
  // The tools of this machine but python3.
  const noPython = join(dir, "no-python-bin");
  mkdirSync(noPython);
  const linked = new Set();
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":"))
    for (const tool of existsSync(d) ? readdirSync(d) : [])
      if (!tool.startsWith("python") && !linked.has(tool)) {
        linked.add(tool);
        symlinkSync(join(d, tool), join(noPython, tool));
      }
  const once = async (kind, endpoint) => {
    // Each run starts with the page cache flushed: the emulator writes every upload to disk, and a run right
    // after another would otherwise pay for the previous one's write-back.
    spawnSync("sync");
    // Asynchronous: the throttling proxy lives in this process's event loop.
    const r = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [fileURLToPath(import.meta.url), kind, endpoint, file], {
        stdio: ["ignore", "pipe", "pipe"],
        env: kind === "direct-portable" ? { ...process.env, PATH: noPython } : process.env,
      });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (b) => (stdout += b));
      p.stderr.on("data", (b) => (stderr += b));
      p.on("error", reject);
      p.on("close", (status) => resolve({ status, stdout, stderr }));
    });
    if (r.status !== 0) throw new Error(`${kind}: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    if (out.sha256 !== null && out.sha256 !== expected)
      throw new Error(`${kind}: wrong sha256 ${out.sha256}`);
    return out;
  };
  // direct: the one-process uploader (python3 is on this machine); direct-portable: the POSIX script, as in
  // an image without python3 (a PATH without it). EXPORT_BENCH_KINDS=a,b runs some only.
  const kinds = process.env.EXPORT_BENCH_KINDS?.split(",") ?? [
    "raw-upload",
    "raw-upload-wide",
    "raw-curl",
    "direct",
    "direct-portable",
    "stream",
  ];
  // s3rver: a real S3 implementation, but its multipart completion re-reads, re-hashes and re-writes every
  // byte on this machine's two cores. memory: completion is metadata only, as on a real store.
  // Short mode (CI) keeps two of the four: s3rver on loopback and the capped memory store.
  const networks = Object.fromEntries(
    Object.entries({
      "s3rver, loopback": s3.endpoint,
      [`s3rver, ${CAP_MIB} MiB/s per connection`]: cappedS3.endpoint,
      "memory store, loopback": mem.endpoint,
      [`memory store, ${CAP_MIB} MiB/s per connection`]: cappedMem.endpoint,
    }).filter(
      ([name]) =>
        (!short || name === "s3rver, loopback" || name === `memory store, ${CAP_MIB} MiB/s per connection`) &&
        // EXPORT_BENCH_STORE=s3rver|memory: one store only.
        (!process.env.EXPORT_BENCH_STORE || name.startsWith(process.env.EXPORT_BENCH_STORE)),
    ),
  );
  const best = {};
  try {
    // Rounds in opposite orders, best of each: no mode is favoured by where it runs.
    const rounds = short ? [kinds] : [kinds, [...kinds].reverse()];
    for (const [net, endpoint] of Object.entries(networks))
      for (const order of rounds)
        for (const kind of order) {
          const r = await once(kind, endpoint);
          const k = `${net}:${kind}`;
          process.stderr.write(`[export-bench] ${k} ${(r.ms / 1000).toFixed(2)} s\n`);
          if (!best[k] || r.ms < best[k].ms) best[k] = r;
        }
    const mibs = (x) => MIB / (x.ms / 1000);
    const row = (net, ours, base, operation, baseline_name) =>
      best[`${net}:${ours}`] && best[`${net}:${base}`]
        ? {
            operation: `export ${MIB} MiB, ${operation}, ${net}`,
            ours: mibs(best[`${net}:${ours}`]),
            baseline: mibs(best[`${net}:${base}`]),
            baseline_name,
            unit: "MiB/s",
            ratio: mibs(best[`${net}:${ours}`]) / mibs(best[`${net}:${base}`]),
            peak_rss_mb: best[`${net}:${ours}`].rss_mb,
            baseline_rss_mb: best[`${net}:${base}`].rss_mb,
          }
        : null;
    const rows = [];
    for (const net of Object.keys(networks)) {
      rows.push(
        row(
          net,
          "direct",
          "raw-curl",
          `direct path (${PARALLEL} parallel curls, Content-MD5 per part + sha256 in one read)`,
          "curl -T to a presigned URL",
        ),
        row(
          net,
          "direct-portable",
          "raw-curl",
          `direct path, portable script (no python3: ${PARALLEL} parallel curls, same checks)`,
          "curl -T to a presigned URL",
        ),
        row(
          net,
          "stream",
          "raw-upload",
          "stream path (host multipart, Content-MD5 per part + sha256)",
          `raw lib-storage Upload (${PART_MIB} MiB x ${STREAM_QUEUE})`,
        ),
        row(
          net,
          "direct",
          "raw-upload-wide",
          "direct path against a multipart baseline (same parts, same store)",
          `raw lib-storage Upload (${PART_MIB} MiB x ${PARALLEL})`,
        ),
      );
    }
    rows.splice(0, rows.length, ...rows.filter(Boolean));
    console.table(rows);
    if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows }));
  } finally {
    await Promise.all([cappedS3.stop(), cappedMem.stop(), mem.stop()]);
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
