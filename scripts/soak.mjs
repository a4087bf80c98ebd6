#!/usr/bin/env node
// Soak: for SOAK_SECONDS (default 180, at most 3600) runs session after session on the local provider and,
// in parallel, through the HTTP server (`serveRunner` in front of a local provider, this project's HTTP
// client in front of it). Each session: create, 10 commands, files of 0 B to 4 MiB written and read back,
// one streamed command, close. At every sample point, between iterations (nothing in flight), it records
// RSS, heap used after a full GC, live handles (`process.getActiveResourcesInfo()`) and open file
// descriptors. At the end it compares the last third of the samples with the first third and exits 1 when
// the heap grew by more than SOAK_MAX_HEAP_GROWTH_MIB (default 16), when handles or descriptors grew, when
// any operation failed, or when a workspace, tag or registry entry outlived its session.
//
// Needs the built packages (`pnpm build`): it imports packages/local/dist and packages/http/dist.
// SOAK_SAMPLE_SECONDS (default: a 30th of the run, at least 1) sets the sampling period; SOAK_OUT=file.json
// also writes the samples and the summary as JSON.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// Heap figures mean little without a full GC first: re-run under --expose-gc when not given.
if (typeof globalThis.gc !== "function") {
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", ...process.execArgv, fileURLToPath(import.meta.url)],
    {
      stdio: "inherit",
      env: process.env,
    },
  );
  process.exit(r.status ?? 1);
}

const SECONDS = Math.min(3600, Math.max(1, Number(process.env.SOAK_SECONDS ?? 180)));
const SAMPLE_SECONDS = Math.max(
  0.25,
  Number(process.env.SOAK_SAMPLE_SECONDS ?? Math.max(1, Math.round(SECONDS / 30))),
);
const MAX_HEAP_GROWTH_MIB = Number(process.env.SOAK_MAX_HEAP_GROWTH_MIB ?? 16);
const COMMANDS_PER_SESSION = 10;
const FILE_SIZES = [0, 1024, 256 * 1024, 4 * 1024 * 1024];

for (const pkg of ["local", "http"]) {
  if (!existsSync(join(root, "packages", pkg, "dist", "index.js"))) {
    console.error(`soak: packages/${pkg}/dist is missing: run 'pnpm build' first`);
    process.exit(2);
  }
}
const { createLocalProvider } = await import(pathToFileURL(join(root, "packages/local/dist/index.js")).href);
const { createHttpRunnerProvider, serveRunner } = await import(
  pathToFileURL(join(root, "packages/http/dist/index.js")).href
);

const MiB = 1024 * 1024;
const scratch = mkdtempSync(join(tmpdir(), "roder-soak-"));
const dirs = {
  localRoot: join(scratch, "local-workspaces"),
  httpRoot: join(scratch, "http-workspaces"),
  registry: join(scratch, "registry"),
  snapshots: join(scratch, "snapshots"),
};
const localSettings = (workspaces) => ({
  root: workspaces,
  registryDir: dirs.registry,
  snapshotDir: dirs.snapshots,
});
const local = createLocalProvider(localSettings(dirs.localRoot));
const token = `soak-${Math.random().toString(36).slice(2)}-token`;
const server = await serveRunner({
  provider: createLocalProvider(localSettings(dirs.httpRoot)),
  token,
  maxFileBytes: 64 * MiB,
});
const http = createHttpRunnerProvider({ baseUrl: server.url, env: { RODER_RUNNER_HTTP_TOKEN: token } });

const counts = {
  local: { sessions: 0, commands: 0, files: 0, streamed: 0 },
  http: { sessions: 0, commands: 0, files: 0, streamed: 0 },
};
const failures = [];
const fail = (what) => {
  if (failures.length < 20) failures.push(what);
  else failures.length++;
};

const payloads = FILE_SIZES.map((size, k) => {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 13 + k) & 255;
  return b;
});

/** The commands of one session, with what each must answer. */
const COMMANDS = [
  { program: "true", args: [], exit: 0 },
  { program: "echo", args: ["hello"], exit: 0, stdout: "hello\n" },
  { program: "sh", args: ["-c", "exit 3"], exit: 3 },
  { program: "sh", args: ["-c", "echo err >&2"], exit: 0, stderr: "err\n" },
  {
    program: "sh",
    args: ["-c", 'printf "%s" "$SOAK_VAR"'],
    env: [["SOAK_VAR", "v-42"]],
    exit: 0,
    stdout: "v-42",
  },
  { program: "pwd", args: [], exit: 0 },
  { program: "sh", args: ["-c", "seq 1 2000"], exit: 0 },
  { program: "ls", args: ["-A"], exit: 0 },
  { program: "sh", args: ["-c", "head -c 65536 /dev/zero | wc -c"], exit: 0, stdout: "65536\n" },
  { program: "false", args: [], exit: 1 },
];

async function cycle(kind, provider, n) {
  const c = counts[kind];
  const session = await provider.createSession({
    id: `soak-${kind}-${n}`,
    provider_id: kind === "local" ? "unix-local" : "http",
    config: kind === "local" ? {} : null,
    default_manifest: { entries: [], mounts: [] },
  });
  c.sessions++;
  try {
    for (const [i, cmd] of COMMANDS.slice(0, COMMANDS_PER_SESSION).entries()) {
      const r = await session.runCommand({
        command_id: `c${i}`,
        program: cmd.program,
        args: cmd.args,
        env: cmd.env ?? [],
        timeout_ms: 30_000,
      });
      c.commands++;
      if (r.exit_code !== cmd.exit) fail(`${kind} ${cmd.program}: exit ${r.exit_code}, expected ${cmd.exit}`);
      if (cmd.stdout !== undefined && r.stdout !== cmd.stdout)
        fail(`${kind} ${cmd.program}: stdout ${JSON.stringify(r.stdout.slice(0, 80))}`);
      if (cmd.stderr !== undefined && r.stderr !== cmd.stderr)
        fail(`${kind} ${cmd.program}: stderr ${JSON.stringify(r.stderr.slice(0, 80))}`);
    }
    for (const [k, data] of payloads.entries()) {
      const path = `dir${k}/f${k}.bin`;
      await session.writeFile({ path, contents: data });
      const back = (await session.readFile({ path })).contents;
      c.files++;
      if (back.length !== data.length || !Buffer.from(back).equals(Buffer.from(data)))
        fail(`${kind} file of ${data.length} B came back different (${back.length} B)`);
    }
    if (typeof session.startCommand === "function") {
      const handle = await session.startCommand({
        command_id: "stream",
        program: "sh",
        args: ["-c", "for i in 1 2 3 4 5; do echo line$i; done; echo done >&2"],
        timeout_ms: 30_000,
      });
      let out = "";
      const decoder = new TextDecoder();
      for await (const chunk of handle.output)
        if (chunk.stream === "stdout") out += decoder.decode(chunk.data);
      const r = await handle.wait();
      c.streamed++;
      if (out !== "line1\nline2\nline3\nline4\nline5\n" || r.exit_code !== 0)
        fail(`${kind} stream: ${JSON.stringify(out)} exit ${r.exit_code}`);
    }
  } finally {
    await session.close();
  }
}

function openFds() {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

/** Live handles by type, e.g. `TCPSocketWrap×2, TCPServerWrap`. */
function handleTypes() {
  const byType = new Map();
  for (const t of process.getActiveResourcesInfo()) byType.set(t, (byType.get(t) ?? 0) + 1);
  return [...byType].map(([t, n]) => (n > 1 ? `${t}×${n}` : t)).join(", ");
}

// SOAK_INJECT_LEAK=1 (for this script's own test) leaks on purpose, per iteration: about 9 MiB of heap, a
// timer and a file descriptor, so that the checks below are shown to fail.
const INJECT_LEAK = process.env.SOAK_INJECT_LEAK === "1";
const leaked = [];
function injectLeak() {
  leaked.push(
    Array.from({ length: 1 << 18 }, (_, i) => ({ i })),
    setInterval(() => {}, 1e9),
    openSync(fileURLToPath(import.meta.url), "r"),
  );
}

const samples = [];
let started = performance.now();
async function sample() {
  // Let transient requests (a pending fs callback, a socket closing) settle; then collect twice.
  await new Promise((r) => setTimeout(r, 50));
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  samples.push({
    t: (performance.now() - started) / 1000,
    sessions: counts.local.sessions + counts.http.sessions,
    rss: m.rss / MiB,
    heap: m.heapUsed / MiB,
    handles: process.getActiveResourcesInfo().length,
    handleTypes: handleTypes(),
    fds: openFds(),
  });
}

// Warm-up (first imports, JIT, the HTTP connection pool), then the measured loop.
await Promise.all([cycle("local", local, "warm"), cycle("http", http, "warm")]);
for (const c of Object.values(counts)) for (const k of Object.keys(c)) c[k] = 0;
started = performance.now();
await sample();
let nextSample = performance.now() + SAMPLE_SECONDS * 1000;
const deadline = performance.now() + SECONDS * 1000;
let iteration = 0;
// At least 4 samples, so that thirds mean something: a slow machine may run up to twice SOAK_SECONDS.
const hardDeadline = deadline + SECONDS * 1000;
while (performance.now() < deadline || (samples.length < 4 && performance.now() < hardDeadline)) {
  await Promise.all([
    cycle("local", local, iteration).catch((e) => fail(`local session: ${e?.name}: ${e?.message}`)),
    cycle("http", http, iteration).catch((e) => fail(`http session: ${e?.name}: ${e?.message}`)),
  ]);
  iteration++;
  if (INJECT_LEAK) injectLeak();
  if (performance.now() >= nextSample) {
    await sample();
    nextSample += SAMPLE_SECONDS * 1000;
  }
}
if (performance.now() - started - (samples.at(-1)?.t ?? 0) * 1000 > 500) await sample();
const duration = (performance.now() - started) / 1000;

await server.close();
for (const x of leaked.splice(0)) {
  if (typeof x === "number") closeSync(x);
  else if (!Array.isArray(x)) clearInterval(x);
}
const leftovers = [dirs.localRoot, dirs.httpRoot, dirs.registry].flatMap((d) =>
  existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [],
);
rmSync(scratch, { recursive: true, force: true });

// First third against last third: medians, so one slow GC or one pooled socket does not decide.
const third = Math.max(1, Math.floor(samples.length / 3));
const first = samples.slice(0, third);
const last = samples.slice(-third);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const summary = {};
for (const key of ["rss", "heap", "handles", "fds"]) {
  if (samples.some((s) => s[key] === null)) continue;
  summary[key] = {
    first: median(first.map((s) => s[key])),
    last: median(last.map((s) => s[key])),
    firstMax: Math.max(...first.map((s) => s[key])),
  };
}
const verdicts = [];
if (samples.length < 3) verdicts.push(`only ${samples.length} samples`);
const heapGrowth = summary.heap.last - summary.heap.first;
if (heapGrowth > MAX_HEAP_GROWTH_MIB)
  verdicts.push(`heap grew ${heapGrowth.toFixed(1)} MiB (bound ${MAX_HEAP_GROWTH_MIB} MiB)`);
// Handles and descriptors: the last third's median must not exceed the first third's maximum.
for (const key of ["handles", "fds"]) {
  if (summary[key] && summary[key].last > summary[key].firstMax)
    verdicts.push(
      `${key} grew: ${summary[key].firstMax} -> ${summary[key].last}` +
        (key === "handles" ? ` (${samples[0].handleTypes} -> ${samples.at(-1).handleTypes})` : ""),
    );
}
if (failures.length) verdicts.push(`${failures.length} failed operations`);
if (leftovers.length) verdicts.push(`${leftovers.length} workspace/tag/registry entries left`);

const total = (k) => counts.local[k] + counts.http[k];
const fmt = (n, d = 1) => (typeof n === "number" ? n.toFixed(d) : "-");
const lines = [];
lines.push(`soak: ${fmt(duration, 0)} s, ${iteration} iterations, samples every ${SAMPLE_SECONDS} s`);
lines.push("");
lines.push("| t (s) | sessions | RSS (MiB) | heap used (MiB) | handles | fds |");
lines.push("|------:|---------:|----------:|----------------:|--------:|----:|");
for (const s of samples)
  lines.push(
    `| ${fmt(s.t, 0)} | ${s.sessions} | ${fmt(s.rss)} | ${fmt(s.heap)} | ${s.handles} | ${s.fds ?? "-"} |`,
  );
lines.push("");
lines.push("| provider | sessions | commands | file round trips | streamed commands |");
lines.push("|----------|---------:|---------:|-----------------:|------------------:|");
for (const [kind, c] of Object.entries(counts))
  lines.push(`| ${kind} | ${c.sessions} | ${c.commands} | ${c.files} | ${c.streamed} |`);
lines.push(
  `| total | ${total("sessions")} | ${total("commands")} | ${total("files")} | ${total("streamed")} |`,
);
lines.push("");
lines.push("| measure | first third (median) | last third (median) | change |");
lines.push("|---------|--------------------:|-------------------:|-------:|");
for (const [key, v] of Object.entries(summary)) {
  const unit = key === "rss" || key === "heap" ? " MiB" : "";
  const d = key === "rss" || key === "heap" ? 1 : 0;
  lines.push(
    `| ${key} | ${fmt(v.first, d)}${unit} | ${fmt(v.last, d)}${unit} | ${v.last - v.first >= 0 ? "+" : ""}${fmt(v.last - v.first, d)}${unit} |`,
  );
}
lines.push("");
for (const f of failures.slice(0, 20)) lines.push(`failure: ${f}`);
lines.push(verdicts.length ? `SOAK FAIL: ${verdicts.join("; ")}` : "SOAK OK");
console.log(lines.join("\n"));

if (process.env.SOAK_OUT) {
  writeFileSync(
    process.env.SOAK_OUT,
    JSON.stringify(
      { duration, iterations: iteration, counts, samples, summary, failures, leftovers, verdicts },
      null,
      2,
    ),
  );
}
process.exit(verdicts.length ? 1 : 0);
