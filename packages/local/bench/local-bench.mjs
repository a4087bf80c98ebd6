// unix-local against the raw system calls it wraps, side by side in one process run.
import { spawn } from "node:child_process";
import { promises as fs, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";

const short = process.env.BENCH_SHORT === "1";
const N = short ? 40 : 300;
const SIZE = (short ? 16 : 64) * 1024 * 1024;
const rows = [];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(fn, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return median(out);
}

const rawSpawn = () =>
  new Promise((resolve, reject) => {
    const p = spawn("true", [], { stdio: ["ignore", "pipe", "pipe"] });
    p.on("error", reject);
    p.on("close", resolve);
  });

const provider = createLocalProvider();
const session = await provider.createSession({
  id: "bench",
  provider_id: "unix-local",
  config: {},
  default_manifest: { entries: [], mounts: [] },
});
const bw = await provider.createSession({
  id: "bench-bwrap",
  provider_id: "unix-local",
  config: { isolation: "bwrap" },
  default_manifest: { entries: [], mounts: [] },
});
try {
  const raw = await time(rawSpawn, N);
  const ours = await time((i) => session.runCommand({ command_id: `c${i}`, program: "true" }), N);
  rows.push({
    operation: "runCommand `true` (p50)",
    ours,
    baseline: raw,
    baseline_name: "raw child_process.spawn",
    unit: "ms",
    ratio: ours / raw,
  });
  const iso = await time((i) => bw.runCommand({ command_id: `b${i}`, program: "true" }), Math.ceil(N / 4));
  rows.push({
    operation: "runCommand `true` under bwrap (p50)",
    ours: iso,
    baseline: raw,
    baseline_name: "raw child_process.spawn",
    unit: "ms",
    ratio: iso / raw,
  });

  const data = new Uint8Array(SIZE).map((_, i) => i & 255);
  const dir = await fs.mkdtemp(join(tmpdir(), "roder-bench-"));
  const rawW = await time(() => fs.writeFile(join(dir, "raw.bin"), data), 5);
  const ourW = await time(() => session.writeFile({ path: "f.bin", contents: data }), 5);
  rows.push({
    operation: `writeFile ${SIZE >> 20} MiB (atomic, fsync)`,
    ours: ourW,
    baseline: rawW,
    baseline_name: "raw fs.writeFile (no fsync)",
    unit: "ms",
    ratio: ourW / rawW,
  });
  const rawR = await time(() => fs.readFile(join(dir, "raw.bin")), 5);
  const ourR = await time(() => session.readFile({ path: "f.bin" }), 5);
  rows.push({
    operation: `readFile ${SIZE >> 20} MiB`,
    ours: ourR,
    baseline: rawR,
    baseline_name: "raw fs.readFile",
    unit: "ms",
    ratio: ourR / rawR,
  });
  await fs.rm(dir, { recursive: true, force: true });

  // createSession + close of a bubblewrap sandbox with its own network (egress: slirp4netns), against a raw
  // bubblewrap run of `true` with the same read-only system.
  const rawBwrap = () =>
    new Promise((resolve, reject) => {
      const p = spawn(
        "bwrap",
        [
          "--unshare-user",
          "--unshare-pid",
          "--unshare-net",
          "--ro-bind",
          "/",
          "/",
          "--dev",
          "/dev",
          "--proc",
          "/proc",
          "true",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      p.on("error", reject);
      p.on("close", resolve);
    });
  const M = short ? 10 : 100;
  const rawB = await time(rawBwrap, Math.min(M, 30));
  const createTimes = [];
  const closeTimes = [];
  const ids = [];
  for (let i = 0; i < M; i++) {
    let t = performance.now();
    const s = await provider.createSession({
      id: `bench-create-${i}`,
      provider_id: "unix-local",
      config: { isolation: "bwrap", network: "egress" },
      default_manifest: { entries: [], mounts: [] },
    });
    createTimes.push(performance.now() - t);
    ids.push(s.state().session_id);
    t = performance.now();
    await s.close();
    closeTimes.push(performance.now() - t);
  }
  rows.push({
    operation: "createSession under bwrap, network egress (p50)",
    ours: median(createTimes),
    baseline: rawB,
    baseline_name: "raw bwrap (userns, pidns, netns) of `true`",
    unit: "ms",
    ratio: median(createTimes) / rawB,
  });
  rows.push({
    operation: "close of a bwrap + egress session (p50)",
    ours: median(closeTimes),
    baseline: rawB,
    baseline_name: "raw bwrap (userns, pidns, netns) of `true`",
    unit: "ms",
    ratio: median(closeTimes) / rawB,
  });
  // What the sessions left: processes naming them, mounts under their workspaces, side dirs, cgroups.
  await new Promise((r) => setTimeout(r, 200));
  const { readdirSync, readFileSync, existsSync } = await import("node:fs");
  let leftProcs = 0;
  for (const n of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${n}/cmdline`, "utf8");
      if (ids.some((id) => cmd.includes(id))) leftProcs++;
    } catch {}
  }
  const mounts = readFileSync("/proc/self/mountinfo", "utf8");
  const leftMounts = ids.filter((id) => mounts.includes(id)).length;
  const leftSide = ids.filter((id) =>
    existsSync(join(tmpdir(), "roder-local-sessions", `${id}.sandbox`)),
  ).length;
  rows.push({
    operation: `${M} bwrap sessions created and closed: processes (slirp4netns included), mounts, side dirs left`,
    ours: leftProcs + leftMounts + leftSide,
    baseline: null,
    baseline_name: "target: 0",
    unit: "count",
    ratio: null,
  });
} finally {
  await session.close();
  await bw.close();
}
const rss = process.resourceUsage().maxRSS / 1024;
for (const r of rows) r.peak_rss_mb = rss;
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows }));
else console.table(rows);
