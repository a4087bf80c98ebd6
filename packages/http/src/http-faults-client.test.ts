// Connections cut in the middle of a body, between the HTTP provider and a real server (local backend,
// isolation "none"): a small HTTP proxy in the test forwards everything and, for the requests a fault
// names, resets the client's socket after N bytes of the response body, or after N bytes of the request
// body (the server then sees its request aborted). The provider must answer with a typed RunnerError,
// retry what is idempotent, never re-run a command, never hang, and never leave a half-written file.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { ProviderApiError, type RemoteRunnerSession, RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "faults-token-8e2c41d7a9";
const BOUND_MS = 15_000;

interface Fault {
  /** Which request: method and a substring of the URL. */
  method: string;
  url: string;
  /** `response`: reset after `afterBytes` bytes of the response body; `request`: of the request body. */
  side: "response" | "request";
  afterBytes: number;
  /** How many matching requests to cut; later ones pass. */
  times: number;
}

let backend: RunnerServer;
let upstream = { host: "127.0.0.1", port: 0 };
let proxy: Server;
let proxyUrl = "";
let faults: Fault[] = [];
let injected = 0;
const retries: string[] = [];

/** Resets the client's connection (RST, not FIN): what a crashed proxy or a dropped NAT entry looks like. */
function reset(socket: Socket): void {
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

function forward(req: IncomingMessage, res: ServerResponse): void {
  const fault = faults.find((f) => f.times > 0 && f.method === req.method && req.url!.includes(f.url));
  if (fault) {
    fault.times--;
    injected++;
  }
  const up = httpRequest({
    ...upstream,
    method: req.method,
    path: req.url,
    headers: req.headers,
    agent: false,
  });
  up.on("error", () => reset(req.socket));
  if (fault?.side === "request") {
    // Forward the first bytes of the body, then cut both sides: the server sees an aborted request.
    let sent = 0;
    req.on("data", (chunk: Buffer) => {
      const room = fault.afterBytes - sent;
      if (room <= 0) return;
      up.write(chunk.subarray(0, room));
      sent += Math.min(room, chunk.length);
      if (sent >= fault.afterBytes) {
        req.pause();
        setTimeout(() => {
          up.destroy();
          reset(req.socket);
        }, 20);
      }
    });
    return;
  }
  req.pipe(up);
  up.on("response", (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    if (fault?.side !== "response") {
      upRes.pipe(res);
      return;
    }
    let sent = 0;
    upRes.on("data", (chunk: Buffer) => {
      const room = fault.afterBytes - sent;
      if (room > 0) res.write(chunk.subarray(0, room));
      sent += chunk.length;
      if (sent >= fault.afterBytes) {
        upRes.destroy();
        // Let the bytes written so far leave before the reset.
        setTimeout(() => reset(req.socket), 20);
      }
    });
  });
}

beforeAll(async () => {
  backend = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
  upstream = { host: "127.0.0.1", port: (await backend.listen(0)).port };
  proxy = createServer(forward);
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise((r) => proxy?.close(r));
  await backend?.close();
  console.log(`http faults: ${injected} connection resets injected`);
});

const provider = () =>
  createHttpRunnerProvider({
    baseUrl: proxyUrl,
    env: { RODER_RUNNER_HTTP_TOKEN: TOKEN },
    retry: { maxRetries: 3, baseDelayMs: 20, maxDelayMs: 200 },
    onRetry: (operation) => retries.push(operation),
  });

async function newSession(): Promise<{ s: RemoteRunnerSession; root: string }> {
  const s = await provider().createSession({
    id: "faults",
    provider_id: "http",
    config: { backend_config: { isolation: "none" } },
    default_manifest: { entries: [], mounts: [] },
  });
  return { s, root: (s.state().metadata as { workspace_root: string }).workspace_root };
}

/** Settles within the bound or fails the test: a cut connection must never hang a call. */
async function bounded<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    return { value: await Promise.race([p, hang]) };
  } catch (error) {
    if ((error as Error).message?.startsWith("no answer within")) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function expectTyped(error: unknown): asserts error is RunnerError {
  expect(RunnerError.isInstance(error), String((error as Error)?.stack ?? error)).toBe(true);
}

/** Lines of a marker file the command appends to: how many times it really ran. */
async function runsOf(path: string, settleMs = 600): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean).length : 0;
}

describe("a connection reset in the middle of a response body", () => {
  it("readFile: retried (idempotent) and succeeds with the right bytes when the fault is transient", async () => {
    const { s } = await newSession();
    const data = randomBytes(512 * 1024);
    await s.writeFile({ path: "blob.bin", contents: data });
    for (const afterBytes of [0, 1, 4096, 300 * 1024]) {
      retries.length = 0;
      faults = [{ method: "GET", url: "/files?path=blob.bin", side: "response", afterBytes, times: 2 }];
      const r = await bounded(s.readFile({ path: "blob.bin" }));
      expect(r.error, `cut after ${afterBytes} bytes`).toBeUndefined();
      expect(sha(r.value!.contents)).toBe(sha(data));
      expect(retries.filter((o) => o === "read file")).toHaveLength(2);
    }
    await s.close();
  });

  it("readFile: a typed, retryable ProviderApiError once the retries are spent", async () => {
    const { s } = await newSession();
    await s.writeFile({ path: "blob.bin", contents: randomBytes(256 * 1024) });
    faults = [{ method: "GET", url: "/files?path=blob.bin", side: "response", afterBytes: 1000, times: 10 }];
    const r = await bounded(s.readFile({ path: "blob.bin" }));
    expectTyped(r.error);
    expect(ProviderApiError.isInstance(r.error) && r.error.isRetryable).toBe(true);
    faults = [];
    await s.close();
  });

  it("runCommand: a typed error, never re-run (a marker file shows one run)", async () => {
    const { s, root } = await newSession();
    // A large answer, so that the cut lands in the body; the marker line is written before the output.
    for (const afterBytes of [0, 100, 64 * 1024]) {
      const marker = join(root, `ran-${afterBytes}.txt`);
      faults = [{ method: "POST", url: "/commands", side: "response", afterBytes, times: 1 }];
      const r = await bounded(
        s.runCommand({
          command_id: `once-${afterBytes}`,
          program: "sh",
          args: ["-c", `echo run >> "$1"; head -c 300000 /dev/zero | tr '\\0' x`, "sh", marker],
        }),
      );
      expectTyped(r.error);
      expect(r.error.code).toBe("provider_api");
      // Not idempotent: never advertised as safe to repeat, never repeated by the transport.
      expect(r.error.isRetryable).toBe(false);
      expect(await runsOf(marker)).toBe(1);
    }
    // The session still works after the faults.
    expect((await s.runCommand({ command_id: "after", program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    await s.close();
  });

  const streamed = (marker: string) => ({
    command_id: `stream-${marker.length}-${Date.now()}`,
    program: "sh",
    args: [
      "-c",
      `echo run >> "$1"; for i in $(seq 1 40); do echo line-$i-$(head -c 40 /dev/zero | tr '\\0' y); done`,
      "sh",
      marker,
    ],
  });
  const expected = Array.from({ length: 40 }, (_, i) => `line-${i + 1}-${"y".repeat(40)}\n`).join("");

  it("startCommand (NDJSON stream) cut once: resumed through the attach route, every byte exactly once, the command ran once", async () => {
    const { s, root } = await newSession();
    const marker = join(root, "streamed.txt");
    faults = [{ method: "POST", url: "/commands/stream", side: "response", afterBytes: 400, times: 1 }];
    const handle = await s.startCommand!(streamed(marker));
    const drained = bounded(
      (async () => {
        let text = "";
        for await (const chunk of handle.output) text += new TextDecoder().decode(chunk.data);
        return text;
      })(),
    );
    const r = await bounded(handle.wait());
    expect(r.error).toBeUndefined();
    expect(r.value!.exit_code).toBe(0);
    expect(r.value!.stdout).toBe(expected);
    expect((await drained).value).toBe(expected);
    expect(await runsOf(marker)).toBe(1);
    await s.close();
  });

  it("startCommand (NDJSON stream) cut and every resume cut: wait() rejects typed, the output ends, the command ran once", async () => {
    const { s, root } = await newSession();
    const marker = join(root, "streamed-cut.txt");
    faults = [
      { method: "POST", url: "/commands/stream", side: "response", afterBytes: 400, times: 1 },
      { method: "GET", url: "/stream", side: "response", afterBytes: 10, times: 20 },
    ];
    const handle = await s.startCommand!(streamed(marker));
    const drained = bounded(
      (async () => {
        let n = 0;
        for await (const chunk of handle.output) n += chunk.data.length;
        return n;
      })(),
    );
    const r = await bounded(handle.wait());
    expectTyped(r.error);
    expect(r.error.code).toBe("provider_api");
    expect(r.error.isRetryable).toBe(false);
    expect((await drained).error).toBeUndefined();
    expect(await runsOf(marker)).toBe(1);
    await s.close();
  });
});

describe("a connection reset in the middle of a request body", () => {
  it("writeFile: the old content stays on disk and no temp file is left, then a retry after a transient cut writes the new one", async () => {
    const { s, root } = await newSession();
    const old = randomBytes(64 * 1024);
    await s.writeFile({ path: "doc.bin", contents: old });
    const next = randomBytes(2 * 1024 * 1024);

    // Every attempt cut: the call fails typed (retryable), the file is exactly the old one.
    faults = [
      { method: "PUT", url: "/files?path=doc.bin", side: "request", afterBytes: 700 * 1024, times: 10 },
    ];
    retries.length = 0;
    const r = await bounded(s.writeFile({ path: "doc.bin", contents: next }));
    expectTyped(r.error);
    expect(ProviderApiError.isInstance(r.error) && r.error.isRetryable).toBe(true);
    expect(retries.filter((o) => o === "write file")).toHaveLength(3);
    await new Promise((w) => setTimeout(w, 300));
    expect(sha(readFileSync(join(root, "doc.bin")))).toBe(sha(old));
    expect(readdirSync(root).filter((n) => n !== "doc.bin")).toEqual([]);

    // One cut, then the retry goes through: the new content, whole.
    faults = [
      { method: "PUT", url: "/files?path=doc.bin", side: "request", afterBytes: 1024 * 1024, times: 1 },
    ];
    const ok = await bounded(s.writeFile({ path: "doc.bin", contents: next }));
    expect(ok.error).toBeUndefined();
    expect(sha(readFileSync(join(root, "doc.bin")))).toBe(sha(next));
    expect(readdirSync(root)).toEqual(["doc.bin"]);
    await s.close();
  });

  it("runCommand: a cut request body never runs the command", async () => {
    const { s, root } = await newSession();
    const marker = join(root, "never.txt");
    faults = [{ method: "POST", url: "/commands", side: "request", afterBytes: 30, times: 1 }];
    const r = await bounded(
      s.runCommand({ command_id: "cut-req", program: "sh", args: ["-c", `echo run >> "$1"`, "sh", marker] }),
    );
    expectTyped(r.error);
    expect(await runsOf(marker)).toBe(0);
    await s.close();
  });

  it("left no session behind on the server", () => {
    expect(backend.sessionCount()).toBe(0);
    expect(injected).toBeGreaterThan(10);
  });
});
