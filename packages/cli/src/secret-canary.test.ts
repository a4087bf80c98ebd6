import { readdirSync, readFileSync } from "node:fs";
import type { RemoteRunnerProvider, RemoteRunnerSession } from "@roder/runner-contract";
import { createE2bProvider } from "@roder/runner-e2b";
import { createFlyProvider } from "@roder/runner-fly";
import { createHttpRunnerProvider, createRunnerServer } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";
import { startE2bStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { describe, expect, it } from "vitest";

// Issue 9's secret canary: every secret a provider uses holds a canary value; every operation runs, failing
// ones included; everything observable is scanned. Zero hits allowed.
const CANARY = {
  host: "canary-host-secret-4f1a9c",
  serverToken: "canary-server-token-77d2e0",
  httpToken: "canary-server-token-77d2e0",
  fly: "canary-fly-token-b83c11",
  e2b: "e2b_canarykey5e6f7a8b",
};
const values = Object.values(CANARY);

function procText(): { cmdlines: string; environs: string; count: number } {
  let cmdlines = "";
  let environs = "";
  let count = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      cmdlines += `${readFileSync(`/proc/${pid}/cmdline`, "latin1")}\n`;
      count++;
      // Commands started by a runner: their environment must not carry host secrets either.
      const env = readFileSync(`/proc/${pid}/environ`, "latin1");
      if (env.includes("RODER_WORKSPACE=")) environs += `${env}\n`;
    } catch {}
  }
  return { cmdlines, environs, count };
}

function errorText(e: unknown): string {
  let t = "";
  for (let c = e; c; c = (c as { cause?: unknown }).cause)
    t += `${(c as Error).name} ${(c as Error).message} ${(c as Error).stack} ${JSON.stringify(c)}\n`;
  return t;
}

async function exercise(
  provider: RemoteRunnerProvider,
  destination: Parameters<RemoteRunnerProvider["createSession"]>[0],
) {
  const seen: string[] = [];
  let places = 0;
  const record = (x: unknown) => {
    places++;
    seen.push(typeof x === "string" ? x : JSON.stringify(x));
  };
  const fail = async (p: Promise<unknown>) => {
    try {
      await p;
      record("no error");
    } catch (e) {
      record(errorText(e));
    }
  };
  const session: RemoteRunnerSession = await provider.createSession(destination);
  try {
    record(session.state());
    const long = session.runCommand({ command_id: "long", program: "sh", args: ["-c", "sleep 1; env"] });
    await new Promise((r) => setTimeout(r, 400));
    const proc = procText();
    places += proc.count;
    seen.push(proc.cmdlines, proc.environs);
    record(await long);
    record(await session.runCommand({ command_id: "env", program: "env" }));
    await session.writeFile({ path: "a.txt", contents: new TextEncoder().encode("a") });
    record(await session.readFile({ path: "a.txt" }));
    await fail(session.readFile({ path: "missing/file" }));
    await fail(session.readFile({ path: "../../etc/passwd" }));
    await fail(session.writeFile({ path: "/etc/x", contents: new Uint8Array([1]) }));
    await fail(session.exportArtifact({ path: "a.txt", recursive: false }));
    await fail(session.snapshot().then((s) => record(s)));
    record(await session.exposePort({ port: 8080, label: null }));
    await fail(provider.validateDestination({ ...destination, config: { token: "x1234567" } }));
  } finally {
    await session.close();
  }
  await fail(
    provider.resumeSession(session.state()).then((s) => s.runCommand({ command_id: "x", program: "true" })),
  );
  return { text: seen.join("\n"), places };
}

describe("secret canary across every provider", () => {
  it("the /proc scan sees a value on a command line (control)", async () => {
    const { spawn } = await import("node:child_process");
    const child = spawn("sh", ["-c", "sleep 2", "sh", "control-marker-1b2c"]);
    await new Promise((r) => setTimeout(r, 200));
    expect(procText().cmdlines).toContain("control-marker-1b2c");
    child.kill();
  });

  it("no canary in errors, state, snapshots, results, logs, process command lines or command environments", async () => {
    process.env.RODER_SECRET_CANARY_TOKEN = CANARY.host;
    const local = createLocalProvider();
    const fly = await startFlyStandIn({ backend: createLocalProvider(), token: CANARY.fly });
    const e2b = await startE2bStandIn({ backend: createLocalProvider(), apiKey: CANARY.e2b });
    const server = createRunnerServer({ provider: createLocalProvider(), token: CANARY.serverToken });
    const { url } = await server.listen(0);
    const dest = (provider_id: string, config: unknown) => ({
      id: "canary",
      provider_id,
      config,
      default_manifest: { entries: [], mounts: [] },
    });
    let places = 0;
    const texts: string[] = [];
    try {
      for (const [provider, d] of [
        [local, dest("unix-local", { isolation: "bwrap" })],
        [
          createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: CANARY.httpToken } }),
          dest("http", null),
        ],
        [
          createFlyProvider({ baseUrl: fly.baseUrl, env: { FLY_API_TOKEN: CANARY.fly } }),
          dest("fly", { app: "roder-test", image: "debian:bookworm-slim" }),
        ],
        [
          createE2bProvider({
            apiUrl: e2b.apiUrl,
            sandboxUrl: e2b.sandboxUrl,
            domain: e2b.domain,
            env: { E2B_API_KEY: CANARY.e2b },
          }),
          dest("e2b", { template: "base" }),
        ],
        // The same tokens from a secret resolver (issue 20 item 3): canaries too.
        [
          createFlyProvider({
            baseUrl: fly.baseUrl,
            env: {},
            tokenSecret: "fly-api",
            secrets: async (ref) => (ref.id === "fly-api" ? { token: CANARY.fly } : {}),
          }),
          dest("fly", { app: "roder-test", image: "debian:bookworm-slim" }),
        ],
        [
          createE2bProvider({
            apiUrl: e2b.apiUrl,
            sandboxUrl: e2b.sandboxUrl,
            domain: e2b.domain,
            env: {},
            apiKeySecret: "e2b",
            secrets: async (ref) => (ref.id === "e2b" ? { api_key: CANARY.e2b } : {}),
          }),
          dest("e2b", { template: "base" }),
        ],
      ] as const) {
        const r = await exercise(provider, d as never);
        places += r.places;
        texts.push(r.text);
      }
      // The stand-ins' request logs and recorded bodies, and a wrong-token answer of the server.
      texts.push(JSON.stringify(fly.requests), JSON.stringify(fly.bodies), JSON.stringify(e2b.requests));
      texts.push(
        await (await fetch(`${url}/capabilities`, { headers: { authorization: "Bearer wrong" } })).text(),
      );
      places += 4;
    } finally {
      delete process.env.RODER_SECRET_CANARY_TOKEN;
      await server.close();
      await fly.stop();
      await e2b.stop();
    }
    const all = texts.join("\n");
    const hits = values.filter((v) => all.includes(v));
    expect(hits, `canary found (${places} places scanned)`).toEqual([]);
    expect(places).toBeGreaterThan(40);
  }, 120_000);
});
