// Fly in exec and agent mode through the Machines API stand-in with Fly's documented limits (its defaults: 1 request/s
// per action per machine with burst 3, exec answered 408 after 30 s): parallel file round trips, sequential
// commands, and a command longer than the exec limit. Errors that reach the user and 429s met are reported.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createFlyProvider } from "@roder/runner-fly";
import { createHttpRunnerProvider, createRunnerServer } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";
import { startFlyStandIn } from "@roder/runner-testkit";

const short = process.env.BENCH_SHORT === "1";
const FILES = short ? 3 : 10;
const COMMANDS = short ? 5 : 20;
// Fly: a 90 s command through the edge's 30 s limit; short mode scales both down (same property).
const LONG_S = short ? 6 : 90;
const EXEC_LIMIT_MS = short ? 2000 : 30_000;
const rows = [];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const backend = createLocalProvider();

async function withStandIn(options, fn) {
  const standIn = await startFlyStandIn({ backend, ...options });
  try {
    return await fn(standIn);
  } finally {
    await standIn.stop();
  }
}

function provider(standIn, settings = {}) {
  return createFlyProvider({ baseUrl: standIn.baseUrl, env: { FLY_API_TOKEN: standIn.token }, ...settings });
}

const destination = (config = {}) => ({
  id: "bench",
  provider_id: "fly",
  config: { app: "bench", image: "debian:bookworm-slim", ...config },
  default_manifest: { entries: [], mounts: [] },
});

/** FILES parallel 1 MiB writes then reads on one machine: ms, 429s met, errors that reached the caller. */
async function roundTrips(settings) {
  return withStandIn({}, async (standIn) => {
    const session = await provider(standIn, settings).createSession(destination());
    try {
      const data = Array.from({ length: FILES }, (_, i) => new Uint8Array(1024 * 1024).fill(i + 1));
      const before = standIn.rateLimited;
      const t = performance.now();
      const results = await Promise.allSettled(
        data.map(async (d, i) => {
          await session.writeFile({ path: `b/${i}.bin`, contents: d });
          const back = await session.readFile({ path: `b/${i}.bin` });
          if (Buffer.compare(Buffer.from(back.contents), Buffer.from(d)) !== 0)
            throw new Error("bytes differ");
        }),
      );
      return {
        ms: performance.now() - t,
        limited: standIn.rateLimited - before,
        errors: results.filter((r) => r.status === "rejected").length,
      };
    } finally {
      await session.close();
    }
  });
}

const paced = await roundTrips({});
const unpaced = await roundTrips({ rateLimit: false });
rows.push({
  operation: `exec mode: ${FILES} parallel 1 MiB round trips (paced: 429s ${paced.limited}, errors ${paced.errors}; unpaced: 429s ${unpaced.limited}, errors ${unpaced.errors})`,
  ours: paced.ms,
  baseline: unpaced.ms,
  baseline_name: "no client pacing (429s absorbed by Retry-After)",
  unit: "ms",
  ratio: paced.ms / unpaced.ms,
});

// Sequential commands: exec mode against the stand-in's own backend (the local runner) doing the same.
await withStandIn({}, async (standIn) => {
  const session = await provider(standIn).createSession(destination());
  const local = await backend.createSession({
    id: "bench-local",
    provider_id: "unix-local",
    config: null,
    default_manifest: { entries: [], mounts: [] },
  });
  try {
    const before = standIn.rateLimited;
    const ours = [];
    let errors = 0;
    for (let i = 0; i < COMMANDS; i++) {
      const t = performance.now();
      const r = await session.runCommand({ command_id: `c${i}`, program: "true" }).catch(() => null);
      if (r?.exit_code !== 0) errors += 1;
      ours.push(performance.now() - t);
    }
    const raw = [];
    for (let i = 0; i < COMMANDS; i++) {
      const t = performance.now();
      await local.runCommand({ command_id: `l${i}`, program: "true" });
      raw.push(performance.now() - t);
    }
    const o = pct(ours, 0.5);
    const b = pct(raw, 0.5);
    rows.push({
      operation: `exec mode: ${COMMANDS} sequential commands \`true\`, p50 (429s ${standIn.rateLimited - before}, errors ${errors})`,
      ours: o,
      baseline: b,
      baseline_name: "the stand-in's backend (local runner) directly",
      unit: "ms",
      ratio: o / b,
    });
  } finally {
    await session.close();
    await local.close();
  }
});

// A command longer than the exec limit: its exit code and full output come back.
await withStandIn({ execRequestLimitMs: EXEC_LIMIT_MS }, async (standIn) => {
  const session = await provider(standIn).createSession(destination(short ? { exec_hold_s: 1 } : {}));
  try {
    const t = performance.now();
    const r = await session.runCommand({
      command_id: "long",
      program: "sh",
      args: ["-c", `i=0; while [ $i -lt ${LONG_S} ]; do echo line$i; sleep 1; i=$((i+1)); done; exit 3`],
    });
    const ms = performance.now() - t;
    const full = r.exit_code === 3 && r.stdout.split("\n").filter(Boolean).length === LONG_S;
    rows.push({
      operation: `exec mode: ${LONG_S} s command through a ${EXEC_LIMIT_MS / 1000} s exec limit (exit code and full output: ${full ? "yes" : "NO"}; 408s ${standIn.execTimeouts})`,
      ours: ms,
      baseline: LONG_S * 1000,
      baseline_name: "the command's own duration",
      unit: "ms",
      ratio: ms / (LONG_S * 1000),
    });
  } finally {
    await session.close();
  }
});

// Agent mode: the machine runs this repository's built CLI (`roder-runner serve`) and every call goes to it over
// HTTP through the stand-in's app address (`fly-force-instance-id`), against the HTTP provider talking to the same
// server on loopback directly, in the same run: `true` p50 and a 64 MiB write then read.
const AGENT_COMMANDS = short ? 20 : 100;
const AGENT_BYTES = 64 * 1024 * 1024;
const repo = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/+$/, "");
async function agentFigures(session) {
  for (let i = 0; i < 3; i++) await session.runCommand({ command_id: `w${i}`, program: "true" });
  const times = [];
  for (let i = 0; i < AGENT_COMMANDS; i++) {
    const t = performance.now();
    const r = await session.runCommand({ command_id: `a${i}`, program: "true" });
    if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
    times.push(performance.now() - t);
  }
  const data = new Uint8Array(AGENT_BYTES).map((_, i) => (i * 7) & 255);
  const t = performance.now();
  await session.writeFile({ path: "big.bin", contents: data });
  const back = await session.readFile({ path: "big.bin" });
  const ms = performance.now() - t;
  if (Buffer.compare(Buffer.from(back.contents), Buffer.from(data)) !== 0) throw new Error("bytes differ");
  return { p50: pct(times, 0.5), file: ms };
}
const serverToken = `bench-${Math.random().toString(36).slice(2)}-token`;
const server = createRunnerServer({
  provider: backend,
  token: serverToken,
  maxFileBytes: 1024 * 1024 * 1024,
});
const { url } = await server.listen(0);
let direct;
try {
  const http = createHttpRunnerProvider({ baseUrl: url, token: serverToken });
  const s = await http.createSession({
    id: "bench-http",
    provider_id: "http",
    config: null,
    default_manifest: { entries: [], mounts: [] },
  });
  try {
    direct = await agentFigures(s);
  } finally {
    await s.close();
  }
} finally {
  await server.close();
}
await withStandIn({ imageDirs: [repo] }, async (standIn) => {
  const session = await provider(standIn).createSession(
    destination({
      mode: "agent",
      agent_command: [process.execPath, `${repo}/packages/cli/dist/bin.js`],
      agent_url: standIn.appUrl,
    }),
  );
  try {
    const before = standIn.requests.length;
    const agent = await agentFigures(session);
    const sent = standIn.requests.slice(before).filter((r) => r.path.endsWith("/exec")).length;
    rows.push({
      operation: `agent mode: ${AGENT_COMMANDS} sequential commands \`true\`, p50 (execs sent: ${sent})`,
      ours: agent.p50,
      baseline: direct.p50,
      baseline_name: "the HTTP provider to a local roder-runner server directly",
      unit: "ms",
      ratio: agent.p50 / direct.p50,
    });
    rows.push({
      operation: "agent mode: 64 MiB file write then read",
      ours: agent.file,
      baseline: direct.file,
      baseline_name: "the HTTP provider to a local roder-runner server directly",
      unit: "ms",
      ratio: agent.file / direct.file,
    });
  } finally {
    await session.close();
  }
});

for (const r of rows) console.log(`${r.operation}: ${r.ours.toFixed(0)} ms vs ${r.baseline.toFixed(0)} ms`);
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows }));
