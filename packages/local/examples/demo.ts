/**
 * The main job on the embedded default: a session on this machine, bucket mounts (read-only and read-write)
 * and artifact export (direct and streamed) to an S3 emulator this demo starts on 127.0.0.1 — no account, no
 * network. Run with `bash scripts/demo.sh` (or `pnpm exec tsx packages/local/examples/demo.ts`).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { codecs, commandOutcome, type RunnerDestination, type RunnerMount } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { startS3Emulator } from "@roder/runner-testkit";

const step = (title: string) => console.log(`\n== ${title}`);
const show = (label: string, value: unknown) =>
  console.log(`   ${label.padEnd(18)} ${typeof value === "string" ? value : JSON.stringify(value)}`);

// An S3-compatible emulator (s3rver) on 127.0.0.1 stands in for the cloud: two buckets, one object to read.
const s3 = await startS3Emulator({ buckets: ["datasets", "outputs"] });
const sdk = new S3Client({
  endpoint: s3.endpoint,
  region: s3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
});
await sdk.send(new PutObjectCommand({ Bucket: "datasets", Key: "train/rows.csv", Body: "a,b\n1,2\n" }));

// The bucket's credentials reach the provider through its environment only (a secret ref names them); the
// destination, which is persisted with the thread, holds none.
const env = {
  ...process.env,
  RODER_SECRET_DEMO_S3_ACCESS_KEY_ID: s3.accessKeyId,
  RODER_SECRET_DEMO_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  RODER_SECRET_DEMO_S3_ENDPOINT: s3.endpoint,
};
const provider = createLocalProvider({ env });
const isolation = provider.setupHint()?.includes("bubblewrap") ? "none" : "bwrap";
const canMount = provider.capabilities().mounts.s3;
const credentials = { id: "demo-s3" };
const mounts: RunnerMount[] = canMount
  ? [
      {
        name: "datasets",
        path: "data",
        read_only: true,
        intent: { kind: "s3", uri: "s3://datasets/train", credentials },
      },
      {
        name: "outputs",
        path: "results",
        read_only: false,
        intent: { kind: "s3", uri: "s3://outputs/run1", credentials },
      },
    ]
  : [];
const artifacts = (mode: "direct" | "stream") => ({
  uri: "s3://outputs/artifacts",
  credentials,
  endpoint: s3.endpoint,
  force_path_style: true,
  mode,
});

// A host folder that goes into the workspace, read-only.
const src = mkdtempSync(join(tmpdir(), "roder-demo-src-"));
writeFileSync(join(src, "README.txt"), "hello from the host\n");

const destination: RunnerDestination = {
  id: "demo",
  provider_id: "unix-local",
  config: { isolation, artifacts: artifacts("direct") },
  default_manifest: { entries: [{ source: src, target: "docs", writable: false }], mounts },
};

step("create a session");
await provider.validateDestination(destination);
const session = await provider.createSession(destination);
const root = (session.state().metadata as { workspace_root: string }).workspace_root;
show("provider", provider.id);
show(
  "isolation",
  isolation === "bwrap"
    ? "bubblewrap (host paths hidden, system read-only)"
    : "none (install bubblewrap to isolate)",
);
show("workspace", root);
show("capabilities", codecs.RunnerCapabilities.encode(provider.capabilities()));

try {
  step("run commands (argv, not a shell line)");
  const r1 = await session.runCommand({ command_id: "ls", program: "ls", args: ["-R", "docs"] });
  show("ls -R docs", r1.stdout.trim().replace(/\n/g, " | "));
  const r2 = await session.runCommand({
    command_id: "env",
    program: "sh",
    args: ["-c", 'echo "$GREETING, $(whoami)"; exit 3'],
    env: [["GREETING", "hi"]],
  });
  show("exit code", r2.exit_code);
  show("stdout", r2.stdout.trim());
  const r3 = await session.runCommand({
    command_id: "slow",
    program: "sleep",
    args: ["30"],
    timeout_ms: 300,
  });
  show("timeout 300 ms", `exit_code=${r3.exit_code} timedOut=${commandOutcome(r3).timedOut}`);
  const ro = await session.runCommand({
    command_id: "ro",
    program: "sh",
    args: ["-c", "echo x > docs/README.txt"],
  });
  show("write read-only", `exit ${ro.exit_code}: ${ro.stderr.trim()}`);

  step("files (binary-safe, atomic, confined)");
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  await session.writeFile({ path: "out/bytes.bin", contents: bytes });
  const back = await session.readFile({ path: "out/bytes.bin" });
  show("256 byte values", back.contents.every((b, i) => b === i) ? "round-trip ok" : "MISMATCH");
  try {
    await session.readFile({ path: "../../etc/passwd" });
  } catch (error) {
    show("../../etc/passwd", `${(error as Error).name}: refused`);
  }

  step("preview a port");
  const server = await session.startCommand({
    command_id: "web",
    program: "node",
    args: [
      "-e",
      "require('http').createServer((q,s)=>s.end('served from the session\\n')).listen(0,function(){console.log(this.address().port)})",
    ],
  });
  let port = 0;
  for await (const chunk of server.output) {
    port = Number(new TextDecoder().decode(chunk.data).trim());
    if (port) break;
  }
  const preview = await session.exposePort({ port, label: "web" });
  show("url", preview.url);
  show(
    "GET",
    (await fetch(preview.url!, { signal: AbortSignal.timeout(15_000) }).then((r) => r.text())).trim(),
  );
  await server.kill();

  step("mount a bucket (S3 emulator on 127.0.0.1, started by this demo)");
  show("emulator", `s3rver at ${s3.endpoint}, buckets datasets and outputs`);
  if (!canMount) {
    show("skipped", provider.setupHint() ?? "this provider cannot mount s3 here");
  } else {
    const ro = await session.runCommand({
      program: "sh",
      args: ["-c", "cat data/rows.csv; echo x > data/new.txt 2>/dev/null && echo wrote || echo refused"],
    });
    show("data/ read-only", `s3://datasets/train: ${ro.stdout.trim().replace(/\n/g, " | ")}`);
    const rw = await session.runCommand({
      program: "sh",
      args: ["-c", "wc -l < data/rows.csv > results/report.txt && cat results/report.txt"],
    });
    show(
      "results/ writable",
      `wrote results/report.txt (${rw.stdout.trim()} lines counted) → s3://outputs/run1`,
    );
  }

  step("export artifacts to the bucket");
  await session.writeFile({ path: "dist/app.bin", contents: bytes });
  const direct = await session.exportArtifact({ path: "dist/app.bin" });
  const meta = direct.metadata as { size: number; sha256: string; transfer: string };
  const fetched = new Uint8Array(await (await fetch(direct.url!)).arrayBuffer());
  const sha = createHash("sha256").update(fetched).digest("hex");
  show("direct", `${direct.artifact_id} (${meta.size} bytes, transfer ${meta.transfer})`);
  show("  signed URL GET", sha === meta.sha256 ? `sha256 ${sha.slice(0, 16)}… verified` : "SHA MISMATCH");
  const streaming = await provider.createSession({ config: { isolation, artifacts: artifacts("stream") } });
  try {
    await streaming.writeFile({ path: "site/index.html", contents: "<h1>built in a session</h1>\n" });
    await streaming.writeFile({ path: "site/app.js", contents: "console.log('hi')\n" });
    const streamed = await streaming.exportArtifact({ path: "site", recursive: true });
    const m = streamed.metadata as { size: number; sha256: string; transfer: string };
    const tgz = new Uint8Array(await (await fetch(streamed.url!)).arrayBuffer());
    const ok = createHash("sha256").update(tgz).digest("hex") === m.sha256;
    show("streamed", `${streamed.artifact_id} (${m.size} bytes, transfer ${m.transfer})`);
    show("  signed URL GET", ok ? "sha256 verified (a .tar.gz of the directory)" : "SHA MISMATCH");
  } finally {
    await streaming.close();
  }

  step("snapshot and resume");
  await session.writeFile({ path: "state.txt", contents: new TextEncoder().encode("v1") });
  const snap = await session.snapshot();
  await session.writeFile({ path: "state.txt", contents: new TextEncoder().encode("v2") });
  const persisted = codecs.RunnerSessionState.encode({ ...session.state(), snapshot: snap });
  show("snapshot", `${snap.snapshot_id} (${(snap.metadata as { size: number }).size} bytes)`);
  const restored = await createLocalProvider({ env }).resumeSession(
    codecs.RunnerSessionState.decode(persisted),
  );
  show(
    "restored state.txt",
    new TextDecoder().decode((await restored.readFile({ path: "state.txt" })).contents),
  );
  show("live state.txt", new TextDecoder().decode((await session.readFile({ path: "state.txt" })).contents));
  await restored.close();
} finally {
  step("close");
  await session.close();
  await session.close();
  rmSync(src, { recursive: true, force: true });
  show("closed", "workspace removed, mounts undone (close is idempotent)");
  if (canMount) {
    const report = await sdk
      .send(new GetObjectCommand({ Bucket: "outputs", Key: "run1/report.txt" }))
      .then((r) => r.Body!.transformToString())
      .catch((error: Error) => `missing (${error.name})`);
    show("in the bucket", `s3://outputs/run1/report.txt = ${report.trim()} (uploads drained at close)`);
  }
  sdk.destroy();
  await s3.stop();
  show("emulator", "stopped");
}
