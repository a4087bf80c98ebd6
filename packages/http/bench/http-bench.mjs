// The HTTP protocol on loopback: this project's client and server against raw fetch of the same endpoints,
// and a load run of many parallel sessions.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createHttpRunnerProvider, createRunnerServer } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";

const short = process.env.BENCH_SHORT === "1";
const N = short ? 40 : 300;
const SIZE = (short ? 16 : 64) * 1024 * 1024;
const SESSIONS = short ? 20 : 200;
const COMMANDS = short ? 5 : 20;
const rows = [];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
async function time(fn, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return pct(out, 0.5);
}

const token = "bench-token-0123456789";
const server = createRunnerServer({
  provider: createLocalProvider(),
  token,
  maxFileBytes: 1024 * 1024 * 1024,
});
const { url } = await server.listen(0);
const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: token } });
const dest = {
  id: "bench",
  provider_id: "http",
  config: null,
  default_manifest: { entries: [], mounts: [] },
};
const session = await provider.createSession(dest);
const sid = session.state().session_id;
const auth = { authorization: `Bearer ${token}` };
try {
  const raw = await time(
    (i) =>
      fetch(`${url}/sessions/${sid}/commands`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ command_id: `r${i}`, program: "true" }),
      }).then((r) => r.text()),
    N,
  );
  const ours = await time((i) => session.runCommand({ command_id: `c${i}`, program: "true" }), N);
  rows.push({
    operation: "command `true` round trip (p50)",
    ours,
    baseline: raw,
    baseline_name: "raw fetch, same endpoint",
    unit: "ms",
    ratio: ours / raw,
  });

  const data = new Uint8Array(SIZE).map((_, i) => (i * 7) & 255);
  const rawPut = await time(
    () =>
      fetch(`${url}/sessions/${sid}/files?path=raw.bin`, { method: "PUT", headers: auth, body: data }).then(
        (r) => r.text(),
      ),
    3,
  );
  const ourPut = await time(() => session.writeFile({ path: "f.bin", contents: data }), 3);
  rows.push({
    operation: `file write ${SIZE >> 20} MiB`,
    ours: ourPut,
    baseline: rawPut,
    baseline_name: "raw HTTP PUT",
    unit: "ms",
    ratio: ourPut / rawPut,
  });
  const rawGet = await time(
    () => fetch(`${url}/sessions/${sid}/files?path=raw.bin`, { headers: auth }).then((r) => r.arrayBuffer()),
    3,
  );
  const ourGet = await time(() => session.readFile({ path: "f.bin" }), 3);
  rows.push({
    operation: `file read ${SIZE >> 20} MiB`,
    ours: ourGet,
    baseline: rawGet,
    baseline_name: "raw HTTP GET",
    unit: "ms",
    ratio: ourGet / rawGet,
  });

  // A big file through a server in its own process (its RSS measured alone), by curl, against a plain Node
  // server streaming the same file to and from disk: what "bounded memory at loopback speed" means.
  rows.push(...(await bigFileRows()));

  // Load: many sessions in parallel, each running commands in sequence.
  let errors = 0;
  const latencies = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, s) => {
      try {
        const sess = await provider.createSession({ ...dest, id: `load-${s}` });
        for (let c = 0; c < COMMANDS; c++) {
          const t = performance.now();
          const r = await sess.runCommand({ command_id: `l${c}`, program: "echo", args: [String(c)] });
          latencies.push(performance.now() - t);
          if (r.stdout !== `${c}\n`) errors++;
        }
        await sess.close();
      } catch {
        errors++;
      }
    }),
  );
  const total = (performance.now() - t0) / 1000;
  const rss = process.resourceUsage().maxRSS / 1024;
  rows.push({
    operation: `${SESSIONS} sessions x ${COMMANDS} commands: p50 latency (errors ${errors})`,
    ours: pct(latencies, 0.5),
    baseline: null,
    baseline_name: "-",
    unit: "ms",
    ratio: null,
    peak_rss_mb: rss,
  });
  rows.push({
    operation: `${SESSIONS} sessions x ${COMMANDS} commands: p99 latency, ${(latencies.length / total).toFixed(0)} cmd/s`,
    ours: pct(latencies, 0.99),
    baseline: null,
    baseline_name: "-",
    unit: "ms",
    ratio: null,
    peak_rss_mb: rss,
  });
  if (errors > 0) process.exitCode = 1;
} finally {
  await session.close();
  await server.close();
}
const rss = process.resourceUsage().maxRSS / 1024;
for (const r of rows) r.peak_rss_mb ??= rss;
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows }));
else console.table(rows);

async function bigFileRows() {
  const BIG = (short ? 64 : 1024) * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), "roder-bench-big-"));
  const src = join(dir, "src.bin");
  execFileSync("head", ["-c", String(BIG), "/dev/urandom"], { stdio: ["ignore", openOut(src), "inherit"] });
  const out = [];
  try {
    const measure = {};
    for (const mode of ["raw", "ours"]) {
      const child = spawn(
        process.execPath,
        ["--expose-gc", join(dirname(fileURLToPath(import.meta.url)), "big-file-child.js"), mode, dir],
        {
          stdio: [
            "pipe",
            "pipe",
            process.env.BENCH_CHILD_LOG ? openSync(process.env.BENCH_CHILD_LOG, "a") : "inherit",
          ],
        },
      );
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const next = async () => JSON.parse((await lines.next()).value);
      const info = await next();
      const ask = async (what) => {
        child.stdin.write(`${what}\n`);
        return next();
      };
      const target =
        mode === "raw" ? `${info.url}/f` : `${info.url}/sessions/${info.session}/files?path=big.bin`;
      const headers = mode === "raw" ? [] : ["-H", `authorization: Bearer ${info.token}`];
      const curl = (args) => {
        const t = performance.now();
        execFileSync("curl", ["-sSf", "--noproxy", "*", ...headers, ...args, target]);
        return performance.now() - t;
      };
      const { base } = await ask("reset");
      const put = Math.min(curl(["-T", src]), curl(["-T", src]));
      const get = Math.min(curl(["-o", "/dev/null"]), curl(["-o", "/dev/null"]));
      const { peak } = await ask("rss");
      measure[mode] = { put, get, growth: peak - base };
      child.stdin.write("exit\n");
      await new Promise((r) => child.on("exit", r));
    }
    const mib = BIG / 2 ** 20;
    for (const op of ["put", "get"]) {
      const ours = measure.ours[op];
      const raw = measure.raw[op];
      out.push({
        operation: `${mib} MiB ${op.toUpperCase()} through the server (curl), server RSS growth ${measure.ours.growth.toFixed(0)} MiB (raw ${measure.raw.growth.toFixed(0)})`,
        ours,
        baseline: raw,
        baseline_name: "plain Node HTTP server streaming the file (curl)",
        unit: "ms",
        ratio: ours / raw,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function openOut(path) {
  return openSync(path, "w");
}
