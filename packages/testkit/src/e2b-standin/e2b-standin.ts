import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  OutputLog,
  type RemoteRunnerProvider,
  type RemoteRunnerSession,
  type RunnerCommandHandle,
  type RunnerDestination,
} from "@roder/runner-contract";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";
import { END_STREAM, envelope, readFirstEnvelope } from "./connect-envelope.js";

/**
 * A local stand-in of E2B: the REST control plane (X-API-KEY) and the in-sandbox daemon "envd" (Connect RPC
 * with the JSON codec, server streams in `application/connect+json` envelopes, `/files` raw bytes), on one
 * loopback port, routed by the `E2b-Sandbox-Id` header. Each sandbox is a session of the injected backend
 * provider (the local runner in tests, with the workspace at /home/user): commands really run.
 *
 * It behaves as E2B does by default (e2b-dev/infra: handlers/timeout_helper.go, sandbox_create.go,
 * sandbox_connect.go, orchestrator/keep_alive.go, create_instance.go, proxy/template/sandbox_not_found.go):
 * a sandbox is killed when its timeout passes, whatever it runs; the plan's maximum timeout and concurrency
 * are enforced; unknown templates are 404. Each behaviour has an option a test may switch off.
 */
export interface E2bStandInOptions {
  backend: RemoteRunnerProvider;
  backendDestination?: (sandboxId: string) => RunnerDestination;
  apiKey?: string;
  /** Version reported to the SDK (gates its features). */
  envdVersion?: string;
  /**
   * Kill a running sandbox when its timeout passes, whatever it is doing (default true, as E2B): its envd
   * connections drop, envd then answers 502 "The sandbox was not found", the control plane 404.
   */
  killOnTimeout?: boolean;
  /**
   * The plan's maximum sandbox timeout in hours (default 1, E2B's base plan; Pro is 24): a create or connect
   * asking for more is 400 "Timeout cannot be greater than N hours", and `POST /sandboxes/{id}/timeout` never
   * keeps a sandbox past this long after its start. `Infinity` switches it off.
   */
  maxTimeoutHours?: number;
  /** The plan's concurrent running sandboxes (default 20, E2B's base plan): one more is 429. `Infinity`: off. */
  maxConcurrentSandboxes?: number;
  /**
   * Templates that exist (default `["base"]`); another name is 404 `template 'x' not found`. Snapshot ids
   * made by this stand-in always exist. `"any"` accepts every name.
   */
  templates?: readonly string[] | "any";
}

export interface E2bStandInSandbox {
  sandboxID: string;
  templateID: string;
  state: "running" | "paused";
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  startedAt: string;
  /** When E2B kills it (ISO time); moved by `setTimeout`, `connect` and resume. */
  endAt: string;
  envdAccessToken: string;
  session: RemoteRunnerSession;
  processes: Map<number, StandInProcess>;
  nextPid: number;
  /** envd responses in flight: a killed sandbox drops their connections. */
  connections: Set<ServerResponse>;
  timer?: ReturnType<typeof setTimeout>;
}

/** A process envd runs: its output log outlives any client stream (Start or Connect), as in envd. */
export interface StandInProcess {
  handle: RunnerCommandHandle;
  log: OutputLog;
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
}

export interface E2bStandIn {
  apiUrl: string;
  sandboxUrl: string;
  domain: string;
  apiKey: string;
  /** Live sandboxes (running or paused), for leak counting. */
  sandboxes(): E2bStandInSandbox[];
  /** Kills a sandbox from the outside (as when it dies): its envd connections drop, as at its timeout. */
  killSandbox(id: string): Promise<void>;
  /** Ids of sandboxes killed because their timeout passed (in order). */
  timedOut: string[];
  faults: FaultSwitch;
  /** Method, path, status and arrival time (ms since the epoch) of every request (no bodies or headers). */
  requests: Array<{ method: string; path: string; status: number; at: number }>;
  stop(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly connectCode?: string,
    /** The exact JSON body to answer (else `{code, message}`). */
    readonly body?: unknown,
  ) {
    super(message);
  }
}

/** What E2B's edge answers for any envd request (and `/health`) of a sandbox that is not running. */
function sandboxNotFound(sandboxId: string): ApiError {
  return new ApiError(502, "The sandbox was not found", undefined, {
    sandboxId,
    message: "The sandbox was not found",
    code: 502,
  });
}

/** E2B's control-plane message for an unknown or gone sandbox (infra utils.SandboxNotFoundMsg). */
const notFoundMsg = (id: string) =>
  `Sandbox ${JSON.stringify(id)} doesn't exist or you don't have access to it`;

/** Seconds a create without `timeout` gets (infra sandboxtypes.SandboxTimeoutDefault); the SDK always sends one. */
const CREATE_DEFAULT_TIMEOUT_S = 15;
/** Seconds a `connect` without `timeout` gets. */
const CONNECT_DEFAULT_TIMEOUT_S = 300;

const CONNECT_STATUS: Record<string, number> = {
  not_found: 404,
  invalid_argument: 400,
  unauthenticated: 401,
  unavailable: 503,
  deadline_exceeded: 504,
  internal: 500,
  permission_denied: 403,
};

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Splits a multipart/form-data body into its file parts (filename, bytes). */
function parseMultipart(
  body: Buffer,
  contentType: string,
): Array<{ filename: string | undefined; data: Buffer }> {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!m) throw new ApiError(400, "multipart body without boundary");
  const boundary = Buffer.from(`--${m[1] ?? m[2]}`);
  const parts: Array<{ filename: string | undefined; data: Buffer }> = [];
  let pos = body.indexOf(boundary);
  while (pos >= 0) {
    const start = pos + boundary.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const headEnd = body.indexOf("\r\n\r\n", start);
    const next = body.indexOf(boundary, headEnd);
    if (headEnd < 0 || next < 0) break;
    const head = body.subarray(start, headEnd).toString();
    const filename = /filename="([^"]*)"/i.exec(head)?.[1];
    parts.push({ filename, data: body.subarray(headEnd + 4, next - 2) });
    pos = next;
  }
  return parts;
}

export async function startE2bStandIn(options: E2bStandInOptions): Promise<E2bStandIn> {
  const apiKey = options.apiKey ?? `e2b_standin_${randomBytes(12).toString("hex")}`;
  const envdVersion = options.envdVersion ?? "0.6.13";
  const killOnTimeout = options.killOnTimeout ?? true;
  const maxHours = options.maxTimeoutHours ?? 1;
  const maxLengthMs = maxHours * 3600 * 1000;
  const maxConcurrent = options.maxConcurrentSandboxes ?? 20;
  const templates = options.templates ?? ["base"];
  const timedOut: string[] = [];
  const domain = "e2b.local";
  const sandboxes = new Map<string, E2bStandInSandbox>();
  /** Snapshots: id → the backend session state and snapshot to restore from. */
  const snapshots = new Map<
    string,
    {
      state: import("@roder/runner-contract").RunnerSessionState;
      snapshot: import("@roder/runner-contract").RunnerSnapshotRef;
    }
  >();
  const requests: E2bStandIn["requests"] = [];
  const faults = createFaultSwitch((status) =>
    JSON.stringify({
      code: status,
      message: status === 429 ? "rate limit exceeded" : "internal server error",
    }),
  );
  const backendDestination =
    options.backendDestination ??
    ((id: string) => ({
      id: `e2b-${id}`,
      provider_id: options.backend.id,
      // One sandbox per machine (its /tmp and processes shared by every command), on this host's network: the
      // stand-in models the internet as this host's loopback, where the tests' S3/GCS/Azure stand-ins listen.
      config: { isolation: "bwrap", workspace_path: "/home/user", network: "host" },
      default_manifest: { entries: [], mounts: [] },
    }));

  const json = (res: ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) return void res.writeHead(status).end();
    const text = JSON.stringify(body);
    res
      .writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
      .end(text);
  };
  const view = (s: E2bStandInSandbox) => ({
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: "standin",
    alias: s.templateID,
    state: s.state,
    metadata: s.metadata,
    startedAt: s.startedAt,
    endAt: s.endAt,
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    envdVersion,
    envdAccessToken: s.envdAccessToken,
    domain,
  });
  const created = (s: E2bStandInSandbox) => ({
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: "standin",
    envdVersion,
    envdAccessToken: s.envdAccessToken,
    trafficAccessToken: null,
    domain,
  });

  /** The VM goes: envd's connections drop at once (as a killed VM's would), then its processes and session. */
  async function destroy(s: E2bStandInSandbox): Promise<void> {
    sandboxes.delete(s.sandboxID);
    if (s.timer) clearTimeout(s.timer);
    for (const res of s.connections) res.destroy();
    s.connections.clear();
    for (const p of s.processes.values()) await p.handle.kill("SIGKILL").catch(() => false);
    await s.session.close().catch(() => {});
  }

  /** Arms the kill at `endAt` (running sandboxes only: a paused one keeps no timer). */
  function schedule(s: E2bStandInSandbox): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (!killOnTimeout || s.state !== "running") return;
    const ms = Math.max(0, Date.parse(s.endAt) - Date.now());
    s.timer = setTimeout(
      () => {
        if (sandboxes.get(s.sandboxID) !== s) return;
        timedOut.push(s.sandboxID);
        void destroy(s);
      },
      Math.min(ms, 2 ** 31 - 1),
    );
    s.timer.unref();
  }

  /** A requested timeout (seconds) checked against the plan, as infra's validateAndParseTimeout. */
  function checkTimeout(seconds: number | undefined, fallback: number, allowZero = false): number {
    const t = seconds ?? fallback;
    if (typeof t !== "number" || !Number.isFinite(t)) throw new ApiError(400, "timeout must be a number");
    if (t < 0 || (t === 0 && !allowZero)) throw new ApiError(400, "Timeout must be greater than 0");
    if (t * 1000 > maxLengthMs) throw new ApiError(400, `Timeout cannot be greater than ${maxHours} hours`);
    return t;
  }

  function checkConcurrency(): void {
    const running = [...sandboxes.values()].filter((x) => x.state === "running").length;
    if (running >= maxConcurrent)
      throw new ApiError(
        429,
        `you have reached the maximum number of concurrent E2B sandboxes (${maxConcurrent}). If you need more, please visit 'https://e2b.dev/docs/billing'`,
      );
  }

  /** The end a timeout gives, never past the plan's maximum length after the sandbox's start (keep_alive.go). */
  function endFor(s: E2bStandInSandbox, seconds: number): number {
    const now = Date.now();
    const left = Date.parse(s.startedAt) + maxLengthMs - now;
    return now + Math.max(0, Math.min(seconds * 1000, left));
  }

  // ---- control plane ----
  async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.headers["x-api-key"] !== apiKey)
      throw new ApiError(401, "Invalid API key, it must start with 'e2b_' prefix");
    const parts = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    const v2 = parts[0] === "v2";
    const p = v2 ? parts.slice(1) : parts;
    if (p[0] !== "sandboxes") throw new ApiError(404, "not found");
    if (p.length === 1 && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as {
        templateID?: string;
        metadata?: Record<string, string>;
        envVars?: Record<string, string>;
        timeout?: number;
      };
      if (!body.templateID) throw new ApiError(400, "templateID is required");
      // A template id that names a snapshot restores it (Sandbox.create(snapshotId)).
      const snap = snapshots.get(body.templateID);
      if (!snap && templates !== "any" && !templates.includes(body.templateID))
        throw new ApiError(404, `template '${body.templateID}' not found`);
      const timeout = checkTimeout(body.timeout, CREATE_DEFAULT_TIMEOUT_S);
      checkConcurrency();
      const id = `i${randomBytes(9).toString("hex")}`;
      const session = snap
        ? await options.backend.resumeSession({ ...snap.state, snapshot: snap.snapshot })
        : await options.backend.createSession(backendDestination(id));
      const now = Date.now();
      const s: E2bStandInSandbox = {
        sandboxID: id,
        templateID: body.templateID,
        state: "running",
        metadata: body.metadata ?? {},
        envVars: body.envVars ?? {},
        startedAt: new Date(now).toISOString(),
        endAt: new Date(now + timeout * 1000).toISOString(),
        envdAccessToken: randomBytes(16).toString("hex"),
        session,
        processes: new Map(),
        nextPid: 100,
        connections: new Set(),
      };
      sandboxes.set(id, s);
      schedule(s);
      return json(res, 201, created(s));
    }
    if (p.length === 1 && method === "GET") {
      const filter = new URLSearchParams(url.searchParams.get("metadata") ?? "");
      const states = url.searchParams.getAll("state").flatMap((x) => x.split(","));
      const list = [...sandboxes.values()].filter(
        (s) =>
          [...filter].every(([k, v]) => s.metadata[k] === v) &&
          (states.length === 0 || states.includes(s.state)),
      );
      return json(res, 200, list.map(view));
    }
    const s = sandboxes.get(p[1] ?? "");
    if (!s) throw new ApiError(404, notFoundMsg(p[1] ?? ""));
    if (p.length === 2 && method === "GET") return json(res, 200, view(s));
    if (p.length === 2 && method === "DELETE") {
      await destroy(s);
      return json(res, 204);
    }
    if (p[2] === "timeout" && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as { timeout?: number };
      if (s.state !== "running") throw new ApiError(409, `Sandbox ${JSON.stringify(s.sandboxID)} is paused`);
      if (Date.now() - Date.parse(s.startedAt) > maxLengthMs)
        throw new ApiError(400, "Max instance length exceeded");
      // Sets the end exactly (shorter too), capped at the plan's maximum length after start.
      s.endAt = new Date(endFor(s, Math.max(0, Number(body.timeout ?? 0)))).toISOString();
      schedule(s);
      return json(res, 204);
    }
    if (p[2] === "snapshots" && method === "POST") {
      await readBody(req);
      const snapshot = await s.session.snapshot();
      if (!snapshot) throw new ApiError(500, "the backend made no snapshot");
      const snapshotID = `snap_${randomBytes(8).toString("hex")}`;
      snapshots.set(snapshotID, { state: s.session.state(), snapshot });
      return json(res, 201, { snapshotID, names: [`${s.templateID}-${snapshotID}`] });
    }
    if (p[2] === "pause" && method === "POST") {
      if (s.state === "paused") throw new ApiError(409, `sandbox ${s.sandboxID} is already paused`);
      s.state = "paused";
      schedule(s);
      return json(res, 204);
    }
    if (p[2] === "connect" && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as { timeout?: number };
      const timeout = checkTimeout(body.timeout, CONNECT_DEFAULT_TIMEOUT_S, true);
      const resumed = s.state === "paused";
      if (resumed) {
        checkConcurrency();
        // A resumed sandbox is a new instance: its clock starts again and its end is set.
        s.state = "running";
        s.startedAt = new Date().toISOString();
        s.endAt = new Date(endFor(s, timeout)).toISOString();
      } else {
        // A running sandbox's end only moves later (keep_alive.go, allowShorter=false).
        const end = endFor(s, timeout);
        if (end > Date.parse(s.endAt)) s.endAt = new Date(end).toISOString();
      }
      schedule(s);
      return json(res, resumed ? 201 : 200, created(s));
    }
    throw new ApiError(404, "not found");
  }

  // ---- envd ----
  function sandboxFor(req: IncomingMessage): E2bStandInSandbox {
    const id = String(req.headers["e2b-sandbox-id"] ?? "");
    const s = sandboxes.get(id);
    // E2B's edge routes only to running sandboxes: gone, killed at timeout or paused, it answers 502.
    if (s?.state !== "running") throw sandboxNotFound(id);
    if (req.headers["x-access-token"] !== s.envdAccessToken)
      throw new ApiError(401, "invalid access token", "unauthenticated");
    return s;
  }

  async function stream(
    req: IncomingMessage,
    res: ServerResponse,
    s: E2bStandInSandbox,
    rpc: "Start" | "Connect",
  ): Promise<void> {
    const msg = readFirstEnvelope(await readBody(req)) as {
      process?: {
        cmd?: string;
        args?: string[];
        envs?: Record<string, string>;
        cwd?: string;
        selector?: { pid?: number };
      };
    };
    const timeoutMs = Number(req.headers["connect-timeout-ms"] ?? "0");
    let pid: number;
    let proc: StandInProcess;
    if (rpc === "Start") {
      const p = msg.process ?? {};
      if (!p.cmd) throw new ApiError(400, "process.cmd is required", "invalid_argument");
      pid = s.nextPid++;
      const handle = await s.session.startCommand!({
        command_id: `pid-${pid}`,
        program: p.cmd,
        args: p.args ?? [],
        cwd: p.cwd ?? null,
        env: Object.entries({ ...s.envVars, ...(p.envs ?? {}) }),
        ...(timeoutMs > 0 ? { timeout_ms: timeoutMs } : {}),
      });
      proc = {
        handle,
        log: new OutputLog(),
        cmd: p.cmd,
        args: p.args ?? [],
        envs: p.envs ?? {},
        ...(p.cwd ? { cwd: p.cwd } : {}),
      };
      s.processes.set(pid, proc);
      // envd owns the process: it runs on when the client's stream goes away, and is forgotten once it ends.
      const started = proc;
      const startedPid = pid;
      void (async () => {
        for await (const chunk of handle.output) started.log.push(chunk);
        started.log.end();
        await handle.wait().catch(() => {});
        s.processes.delete(startedPid);
      })();
    } else {
      // proto-JSON inlines the oneof: {"process":{"pid":N}}.
      pid = Number((msg.process as { pid?: number } | undefined)?.pid ?? msg.process?.selector?.pid);
      const known = s.processes.get(pid);
      if (!known) throw new ApiError(404, `process ${pid} not found`, "not_found");
      proc = known;
    }
    // Start streams the whole output; Connect only what comes after it (envd does not replay).
    const follower = proc.log.follow({ replay: rpc === "Start" });
    res.on("close", follower.stop);
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.write(envelope({ event: { start: { pid } } }));
    const keepalive = setInterval(() => res.write(envelope({ event: { keepalive: {} } })), 20_000);
    try {
      for await (const chunk of follower.output) {
        res.write(
          envelope({ event: { data: { [chunk.stream]: Buffer.from(chunk.data).toString("base64") } } }),
        );
      }
      if (res.destroyed) return;
      const result = await proc.handle.wait();
      if (!sandboxes.has(s.sandboxID)) {
        res.end(envelope({ error: { code: "unavailable", message: "sandbox was killed" } }, END_STREAM));
        return;
      }
      if (result.exit_code === null && /timed out/.test(result.stderr)) {
        res.end(
          envelope(
            { error: { code: "deadline_exceeded", message: "context deadline exceeded" } },
            END_STREAM,
          ),
        );
        return;
      }
      const code = result.exit_code ?? -1;
      res.write(
        envelope({
          event: {
            end: {
              exitCode: code,
              exited: result.exit_code !== null,
              status: result.exit_code === null ? "signal: killed" : `exit status ${code}`,
            },
          },
        }),
      );
      res.end(envelope({}, END_STREAM));
    } finally {
      clearInterval(keepalive);
      res.off("close", follower.stop);
    }
  }

  async function unary(
    req: IncomingMessage,
    s: E2bStandInSandbox,
    service: string,
    rpc: string,
  ): Promise<unknown> {
    const body = JSON.parse((await readBody(req)).toString() || "{}") as Record<string, unknown>;
    const run = async (argv: string[]) =>
      s.session.runCommand({
        command_id: `envd-${randomBytes(4).toString("hex")}`,
        program: argv[0]!,
        args: argv.slice(1),
      });
    if (service === "process.Process") {
      if (rpc === "SendSignal") {
        const sel = body.process as { pid?: number; selector?: { pid?: number } } | undefined;
        const pid = Number(sel?.pid ?? sel?.selector?.pid);
        const p = s.processes.get(pid);
        if (!p) throw new ApiError(404, `process ${pid} not found`, "not_found");
        await p.handle.kill(body.signal === "SIGNAL_SIGTERM" || body.signal === 15 ? "SIGTERM" : "SIGKILL");
        return {};
      }
      if (rpc === "List")
        return {
          processes: [...s.processes.entries()].map(([pid, p]) => ({
            pid,
            config: { cmd: p.cmd, args: p.args, envs: p.envs, ...(p.cwd ? { cwd: p.cwd } : {}) },
          })),
        };
    }
    if (service === "filesystem.Filesystem") {
      const path = String(body.path ?? "");
      if (rpc === "Move") {
        const r = await run(["mv", "-f", "--", String(body.source), String(body.destination)]);
        if (r.exit_code !== 0) throw new ApiError(404, r.stderr.trim(), "not_found");
        return {
          entry: {
            name: String(body.destination).split("/").pop(),
            type: "FILE_TYPE_FILE",
            path: body.destination,
          },
        };
      }
      if (rpc === "MakeDir") {
        const r = await run(["mkdir", "-p", "--", path]);
        if (r.exit_code !== 0) throw new ApiError(400, r.stderr.trim(), "invalid_argument");
        return { entry: { name: path.split("/").pop(), type: "FILE_TYPE_DIRECTORY", path } };
      }
      if (rpc === "Remove") {
        await run(["rm", "-rf", "--", path]);
        return {};
      }
      if (rpc === "Stat") {
        const r = await run(["stat", "-c", "%F|%s|%a|%N", "--", path]);
        if (r.exit_code !== 0) throw new ApiError(404, `path ${path} not found`, "not_found");
        const [type, size, mode] = r.stdout.trim().split("|");
        return {
          entry: {
            name: path.split("/").pop(),
            type: type?.startsWith("directory") ? "FILE_TYPE_DIRECTORY" : "FILE_TYPE_FILE",
            path,
            size: String(size),
            mode: Number.parseInt(mode ?? "0", 8),
            permissions: "",
          },
        };
      }
    }
    throw new ApiError(404, `unknown method ${service}/${rpc}`, "not_found");
  }

  async function envd(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (url.pathname === "/health") {
      const id = req.headers["e2b-sandbox-id"];
      if (id !== undefined && sandboxes.get(String(id))?.state !== "running")
        throw sandboxNotFound(String(id));
      return json(res, 204);
    }
    const s = sandboxFor(req);
    s.connections.add(res);
    res.on("close", () => s.connections.delete(res));
    const rpcMatch = /^\/(process\.Process|filesystem\.Filesystem)\/(\w+)$/.exec(url.pathname);
    if (rpcMatch) {
      const [, service, rpc] = rpcMatch;
      if (service === "process.Process" && (rpc === "Start" || rpc === "Connect"))
        return stream(req, res, s, rpc);
      return json(res, 200, await unary(req, s, service!, rpc!));
    }
    if (url.pathname === "/files") {
      const path = url.searchParams.get("path");
      if (req.method === "GET") {
        if (!path) throw new ApiError(400, "path is required");
        const r = await s.session.readFile({ path }).catch((e: Error & { code?: unknown }) => {
          // envd answers 404 for a missing path (the SDK turns it into FileNotFoundError).
          throw new ApiError(
            e.code === "not_found" || /no such file/i.test(e.message) ? 404 : 400,
            e.message,
          );
        });
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": r.contents.length,
        });
        return void res.end(Buffer.from(r.contents));
      }
      if (req.method === "POST") {
        const body = await readBody(req);
        const type = String(req.headers["content-type"] ?? "");
        const files = type.startsWith("multipart/")
          ? parseMultipart(body, type).map((p) => ({ path: path ?? p.filename ?? "", data: p.data }))
          : [{ path: path ?? "", data: body }];
        const out = [];
        for (const f of files) {
          if (!f.path) throw new ApiError(400, "path is required");
          await s.session.writeFile({ path: f.path, contents: new Uint8Array(f.data) }).catch((e: Error) => {
            throw new ApiError(400, e.message);
          });
          out.push({ path: f.path, name: f.path.split("/").pop(), type: "file" });
        }
        return json(res, 200, out);
      }
    }
    throw new ApiError(404, "not found");
  }

  const server = createServer((req, res) => {
    const at = Date.now();
    res.on("finish", () =>
      requests.push({
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        status: res.statusCode,
        at,
      }),
    );
    void (async () => {
      if (await faults.apply(req, res)) return;
      const url = new URL(req.url ?? "/", "http://x");
      const isEnvd = req.headers["e2b-sandbox-id"] !== undefined || url.pathname === "/health";
      try {
        if (isEnvd) await envd(req, res, url);
        else await control(req, res, url);
      } catch (error) {
        req.resume();
        const e = error instanceof ApiError ? error : new ApiError(500, "internal error", "internal");
        if (res.headersSent) {
          res.end(envelope({ error: { code: e.connectCode ?? "internal", message: e.message } }, END_STREAM));
          return;
        }
        if (e.body !== undefined) json(res, e.status, e.body);
        else if (isEnvd && e.connectCode)
          json(res, CONNECT_STATUS[e.connectCode] ?? e.status, { code: e.connectCode, message: e.message });
        else json(res, e.status, { code: e.status, message: e.message });
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  return {
    apiUrl: base,
    sandboxUrl: base,
    domain,
    apiKey,
    sandboxes: () => [...sandboxes.values()],
    timedOut,
    async killSandbox(id) {
      const s = sandboxes.get(id);
      if (s) await destroy(s);
    },
    faults,
    requests,
    async stop() {
      for (const s of [...sandboxes.values()]) await destroy(s);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
