// Load through one server (local backend, isolation "none") on 127.0.0.1, driven by the HTTP provider:
// 50 parallel binary transfers of 1–8 MiB checked by sha256 on both sides, then 200 sessions held at once,
// each running commands in sequence. Zero errors, every session closed at the end, and memory under stated
// bounds (RSS growth while sessions are held, peak RSS while bytes are in flight, no buffer retained after).
// The sessions run first: spawning from a process whose RSS is large costs more. Latency figures live in the bench
// (packages/http/bench/http-bench.mjs runs 200 sessions x 20 commands); here only correctness and bounds.
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { RemoteRunnerSession } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "load-token-71b3e0c9f2";
const MiB = 1024 * 1024;
const TRANSFERS = 50;
const SESSIONS = 200;
/** 200 x 20 is the bench's figure; 5 per session keeps this file well under a minute on 2 busy cores. */
const COMMANDS = 5;
/** Resident memory may grow at most this much while 200 sessions are held (measured after a GC). */
const SESSIONS_RSS_LIMIT_MIB = 128;
/**
 * While ~220 MiB are in flight, client and server (one process here) may hold a few copies of them: the
 * peak growth stays under this; once done, every transfer buffer is released (ArrayBuffer memory back
 * within 32 MiB of where it was; RSS itself is not given back to the OS by the allocator).
 */
const TRANSFERS_PEAK_LIMIT_MIB = 1024;
const RELEASED_SLACK_MIB = 32;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const rssMiB = () => {
  gc();
  return process.memoryUsage().rss / MiB;
};

let server: RunnerServer;
let url = "";
let peakRss = 0;
const figures: string[] = [];
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss / MiB);
}, 50);

const provider = () => createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
const dest = (id: string) => ({
  id,
  provider_id: "http",
  config: { backend_config: { isolation: "none" } },
  default_manifest: { entries: [], mounts: [] },
});
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const rootOf = (s: RemoteRunnerSession) => (s.state().metadata as { workspace_root: string }).workspace_root;

beforeAll(async () => {
  server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN, maxFileBytes: 16 * MiB });
  url = (await server.listen(0)).url;
  // Warm up (module loading, first spawn) before the baseline.
  const s = await provider().createSession(dest("warm"));
  await s.runCommand({ command_id: "w", program: "true" });
  await s.close();
});

afterAll(async () => {
  clearInterval(sampler);
  await server?.close();
  for (const f of figures) console.log(`http load: ${f}`);
});

describe("load through one server", () => {
  it(`holds ${SESSIONS} sessions at once, ${COMMANDS} commands each, with zero errors, then closes them all`, async () => {
    let errors = 0;
    let held = 0;
    let commands = 0;
    const opened: RemoteRunnerSession[] = [];
    const rssBefore = rssMiB();
    const started = Date.now();
    // Every session is created before any closes, so that all of them are alive at the same time.
    const created = await Promise.all(
      Array.from({ length: SESSIONS }, (_, n) =>
        provider()
          .createSession(dest(`load-${n}`))
          .then((s) => {
            opened.push(s);
            return s;
          })
          .catch((error) => {
            errors++;
            console.error(`session ${n}`, error);
            return undefined;
          }),
      ),
    );
    held = server.sessionCount();
    await Promise.all(
      created.map(async (s, n) => {
        if (!s) return;
        try {
          for (let c = 0; c < COMMANDS; c++) {
            const r = await s.runCommand({ command_id: `c${c}`, program: "echo", args: [`${n}:${c}`] });
            commands++;
            if (r.exit_code !== 0 || r.stdout !== `${n}:${c}\n`) errors++;
          }
        } catch (error) {
          errors++;
          console.error(`session ${n}`, error);
        }
      }),
    );
    await Promise.all(opened.map((s) => s.close().catch(() => errors++)));
    const seconds = (Date.now() - started) / 1000;
    expect(errors).toBe(0);
    expect(held).toBe(SESSIONS);
    expect(commands).toBe(SESSIONS * COMMANDS);
    expect(server.sessionCount()).toBe(0);
    const growth = rssMiB() - rssBefore;
    figures.push(
      `${held} sessions held at once, ${commands} commands in ${seconds.toFixed(1)} s, 0 errors, RSS growth ${growth.toFixed(0)} MiB`,
    );
    expect(growth).toBeLessThan(SESSIONS_RSS_LIMIT_MIB);
  }, 180_000); // correctness under load, not speed: the bench times it

  it(`moves ${TRANSFERS} files of 1–8 MiB in parallel, writes and reads, with zero errors (sha256 on both sides)`, async () => {
    const rssBefore = rssMiB();
    const buffersBefore = process.memoryUsage().arrayBuffers / MiB;
    const sessions = await Promise.all(
      Array.from({ length: 5 }, (_, i) => provider().createSession(dest(`f${i}`))),
    );
    // Half of the transfers read files put on the server's disk beforehand; the other half write new ones.
    const plan = Array.from({ length: TRANSFERS }, (_, i) => ({
      i,
      kind: i % 2 === 0 ? ("write" as const) : ("read" as const),
      size: (1 + ((i * 5) % 8)) * MiB - (i % 3) * 4099,
      session: sessions[i % sessions.length]!,
    }));
    const expected = new Map<number, string>();
    for (const t of plan.filter((t) => t.kind === "read")) {
      const bytes = randomBytes(t.size);
      writeFileSync(join(rootOf(t.session), `in-${t.i}.bin`), bytes);
      expected.set(t.i, sha(bytes));
    }
    let errors = 0;
    let bytesMoved = 0;
    peakRss = 0;
    await Promise.all(
      plan.map(async (t) => {
        try {
          if (t.kind === "write") {
            const bytes = randomBytes(t.size);
            await t.session.writeFile({ path: `out/${t.i}.bin`, contents: bytes });
            const onDisk = readFileSync(join(rootOf(t.session), "out", `${t.i}.bin`));
            if (sha(onDisk) !== sha(bytes)) errors++;
          } else {
            const r = await t.session.readFile({ path: `in-${t.i}.bin` });
            if (sha(r.contents) !== expected.get(t.i)) errors++;
          }
          bytesMoved += t.size;
        } catch (error) {
          errors++;
          console.error(`transfer ${t.i} (${t.kind}, ${t.size} bytes)`, error);
        }
      }),
    );
    expect(errors).toBe(0);
    expect(bytesMoved).toBeGreaterThan(200 * MiB);
    await Promise.all(sessions.map((s) => s.close()));
    expect(server.sessionCount()).toBe(0);
    const peakGrowth = peakRss - rssBefore;
    // Two collections a moment apart: fetch bodies are released through finalizers.
    gc();
    await new Promise((r) => setTimeout(r, 200));
    gc();
    const retained = process.memoryUsage().arrayBuffers / MiB - buffersBefore;
    figures.push(
      `${TRANSFERS} parallel transfers, ${(bytesMoved / MiB).toFixed(0)} MiB, 0 errors, peak RSS growth ${peakGrowth.toFixed(0)} MiB, buffers retained after ${retained.toFixed(1)} MiB`,
    );
    expect(peakGrowth).toBeLessThan(TRANSFERS_PEAK_LIMIT_MIB);
    expect(retained).toBeLessThan(RELEASED_SLACK_MIB);
  }, 180_000); // correctness under load, not speed: the bench times it
});
