/**
 * The main job on the embedded default: a session on this machine (no account, no network).
 * Run with `bash scripts/demo.sh` (or `pnpm exec tsx packages/local/examples/demo.ts`).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { codecs, commandOutcome, type RunnerDestination } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";

const step = (title: string) => console.log(`\n== ${title}`);
const show = (label: string, value: unknown) =>
  console.log(`   ${label.padEnd(18)} ${typeof value === "string" ? value : JSON.stringify(value)}`);

const provider = createLocalProvider();
const isolation = provider.setupHint()?.includes("bubblewrap") ? "none" : "bwrap";

// A host folder that goes into the workspace, read-only.
const src = mkdtempSync(join(tmpdir(), "roder-demo-src-"));
writeFileSync(join(src, "README.txt"), "hello from the host\n");

const destination: RunnerDestination = {
  id: "demo",
  provider_id: "unix-local",
  config: { isolation },
  default_manifest: { entries: [{ source: src, target: "docs", writable: false }], mounts: [] },
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
      "require('http').createServer((q,s)=>s.end('served from the session\\n')).listen(0,'127.0.0.1',function(){console.log(this.address().port)})",
    ],
  });
  let port = 0;
  for await (const chunk of server.output) {
    port = Number(new TextDecoder().decode(chunk.data).trim());
    if (port) break;
  }
  const preview = await session.exposePort({ port, label: "web" });
  show("url", preview.url);
  show("GET", (await fetch(preview.url!).then((r) => r.text())).trim());
  await server.kill();

  step("snapshot and resume");
  await session.writeFile({ path: "state.txt", contents: new TextEncoder().encode("v1") });
  const snap = await session.snapshot();
  await session.writeFile({ path: "state.txt", contents: new TextEncoder().encode("v2") });
  const persisted = codecs.RunnerSessionState.encode({ ...session.state(), snapshot: snap });
  show("snapshot", `${snap.snapshot_id} (${(snap.metadata as { size: number }).size} bytes)`);
  const restored = await createLocalProvider().resumeSession(codecs.RunnerSessionState.decode(persisted));
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
}
