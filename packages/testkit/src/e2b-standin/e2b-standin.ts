import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { posix } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  OutputLog,
  type RemoteRunnerProvider,
  type RemoteRunnerSession,
  type RunnerCommandHandle,
  type RunnerDestination,
} from "@roder/runner-contract";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";
import { startHttpsInterceptProxy } from "../https-intercept/intercept-proxy.js";
import { END_STREAM, envelope, readFirstEnvelope } from "./connect-envelope.js";
import { EnvdFsError, fsOp, startWatch, watchEvent } from "./envd-fs.js";
import { ENVD_USERS, type EnvdUser, lookupUser, resolvePath, rpcUser } from "./envd-paths.js";
import { checkFileAccess, fileSignature, signatureMatches } from "./envd-signature.js";
import { proxyToPort } from "./port-proxy.js";
import { type SandboxMetricSample, sandboxMetrics } from "./sandbox-metrics.js";

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
  /** How often a running sandbox's resources are sampled for `GET /sandboxes/{id}/metrics` (default 5000, E2B's; 0: never). */
  metricsIntervalMs?: number;
  /**
   * Serve E2B's edge over HTTPS too, as `https://<port>-<id>.<domain>` (what `getHost(port)` names), through the
   * testkit's intercepting HTTPS proxy: a client given `HTTPS_PROXY=<httpsEdge.proxyUrl>` and trusting
   * `httpsEdge.caCertFile` (`NODE_EXTRA_CA_CERTS`; Node's fetch honours the proxy with `NODE_USE_ENV_PROXY=1`,
   * Node ≥ 22.21 / 24.5) reaches a sandbox's ports by their E2B names. Default false (it makes a CA for the run).
   */
  httpsEdge?: boolean;
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
  /** Resource samples, one per collection interval while running (`GET /sandboxes/{id}/metrics`). */
  metrics: Array<SandboxMetricSample & { timestampUnix: number }>;
  cpuTicks?: [number, number];
  metricsTimer?: ReturnType<typeof setInterval>;
  /** What its timeout does (`autoPause` at create) and whether traffic through the edge resumes it. */
  lifecycle: { onTimeout: "kill" | "pause"; autoResume: boolean };
  /** The timeout (s) it was created with: an auto-resume runs it again for as long. */
  timeoutS: number;
}

/** A process envd runs: its output log outlives any client stream (Start or Connect), as in envd. */
export interface StandInProcess {
  handle: RunnerCommandHandle;
  log: OutputLog;
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
  /**
   * Its input, through the backend handle's `write`/`closeStdin`/`resize`: `stdin` (a pipe, until closed) or
   * `pty` (a terminal), as envd gives it.
   */
  input?: { pty: boolean; closed: boolean };
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
  /** With `httpsEdge`: the proxy to name in `HTTPS_PROXY` and the CA certificate its TLS is issued from. */
  httpsEdge?: { proxyUrl: string; caCertFile: string };
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

/** The team's namespace in snapshot names (`<team>/<name>`). */
const TEAM = "standin";

/** Seconds a create without `timeout` gets (infra sandboxtypes.SandboxTimeoutDefault); the 2.51 SDK sends none without `timeoutMs`. */
const CREATE_DEFAULT_TIMEOUT_S = 15;
/** Seconds a `connect` without `timeout` gets. */
const CONNECT_DEFAULT_TIMEOUT_S = 300;

/** envd's port: requests routed to any other port go to the sandbox's own servers (`getHost`). */
const ENVD_PORT = 49983;

const CONNECT_STATUS: Record<string, number> = {
  not_found: 404,
  already_exists: 409,
  failed_precondition: 400,
  unimplemented: 501,
  unknown: 500,
  invalid_argument: 400,
  unauthenticated: 401,
  unavailable: 503,
  deadline_exceeded: 504,
  internal: 500,
  permission_denied: 403,
};

/** Whether `Accept-Encoding` asks for gzip (with a non-zero quality), as envd's download negotiates. */
function acceptsGzip(header: string | string[] | undefined): boolean {
  return String(header ?? "")
    .split(",")
    .some((part) => {
      const [name, ...params] = part.split(";").map((x) => x.trim().toLowerCase());
      const q = params.find((x) => x.startsWith("q="));
      return name === "gzip" && (q === undefined || Number(q.slice(2)) > 0);
    });
}

/**
 * `X-Metadata-<key>: <value>` headers of an upload, keys lower-cased, checked as envd does: printable US-ASCII,
 * keys at most 246 bytes, all of it (with the `user.e2b.` prefix per key) at most 4096 bytes.
 */
function metadataHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (!/^x-metadata-/i.test(name)) continue;
    const key = name.slice("x-metadata-".length).toLowerCase();
    if (key in out) continue;
    out[key] = req.rawHeaders[i + 1]!;
  }
  let total = 0;
  for (const [k, v] of Object.entries(out)) {
    if (!k) throw new ApiError(400, "metadata key must not be empty");
    if (!/^[\x20-\x7e]*$/.test(k) || !/^[\x20-\x7e]*$/.test(v))
      throw new ApiError(400, `metadata key ${JSON.stringify(k)} or its value is not printable US-ASCII`);
    if (k.length > 246) throw new ApiError(400, `metadata key ${JSON.stringify(k)} is longer than 246 bytes`);
    total += "user.e2b.".length + k.length + v.length;
  }
  if (total > 4096) throw new ApiError(400, "metadata is larger than 4096 bytes");
  return out;
}

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
  /** Snapshot templates: raw template id → what to restore from, and E2B's ids and names of it. */
  const snapshots = new Map<
    string,
    {
      state: import("@roder/runner-contract").RunnerSessionState;
      snapshot: import("@roder/runner-contract").RunnerSnapshotRef;
      snapshotID: string;
      names: string[];
      sandboxID: string;
    }
  >();
  /** A snapshot by any of its references: its template id (with or without a tag), its id or a name. */
  const findSnapshot = (ref: string) => {
    const bare = ref.replace(/:default$/, "");
    for (const [raw, snap] of snapshots)
      if (
        raw === bare ||
        snap.snapshotID === ref ||
        snap.names.includes(bare) ||
        snap.names.includes(`${TEAM}/${bare}`)
      )
        return { raw, snap };
    return undefined;
  };
  const metricsIntervalMs = options.metricsIntervalMs ?? 5000;
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
    lifecycle: s.lifecycle,
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
    if (s.metricsTimer) clearInterval(s.metricsTimer);
    for (const res of s.connections) res.destroy();
    s.connections.clear();
    for (const p of s.processes.values()) await p.handle.kill("SIGKILL").catch(() => false);
    await s.session.close().catch(() => {});
  }

  /** Collects a resource sample every interval while the sandbox runs (E2B aligns them to 5 s buckets). */
  function collectMetrics(s: E2bStandInSandbox): void {
    if (s.metricsTimer) clearInterval(s.metricsTimer);
    s.metricsTimer = undefined;
    if (s.state !== "running" || !(metricsIntervalMs > 0)) return;
    let busy = false;
    s.metricsTimer = setInterval(() => {
      if (busy || sandboxes.get(s.sandboxID) !== s) return;
      busy = true;
      sandboxMetrics(s.session, ENVD_USERS.user!.home, s.cpuTicks)
        .then((m) => {
          s.cpuTicks = m.cpuTicks;
          s.metrics.push({ ...m, timestampUnix: Math.floor(Date.now() / 1000) });
          if (s.metrics.length > 720) s.metrics.shift();
        })
        .catch(() => {})
        .finally(() => {
          busy = false;
        });
    }, metricsIntervalMs);
    s.metricsTimer.unref();
  }

  function pauseNow(s: E2bStandInSandbox): void {
    s.state = "paused";
    for (const res of s.connections) res.destroy();
    s.connections.clear();
    schedule(s);
  }

  /** A paused sandbox running again as a new instance: its clock starts again and its end is set. */
  function resumeNow(s: E2bStandInSandbox, timeoutS: number): void {
    checkConcurrency();
    s.state = "running";
    s.startedAt = new Date().toISOString();
    s.endAt = new Date(endFor(s, timeoutS)).toISOString();
    schedule(s);
  }

  /** Arms the kill at `endAt` (running sandboxes only: a paused one keeps no timer). */
  function schedule(s: E2bStandInSandbox): void {
    collectMetrics(s);
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (!killOnTimeout || s.state !== "running") return;
    const ms = Math.max(0, Date.parse(s.endAt) - Date.now());
    s.timer = setTimeout(
      () => {
        if (sandboxes.get(s.sandboxID) !== s) return;
        timedOut.push(s.sandboxID);
        // `lifecycle.onTimeout: "pause"`: paused (its envd connections drop, as a paused VM's), not killed.
        if (s.lifecycle.onTimeout === "pause") return pauseNow(s);
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

  /** A new running sandbox on a backend session (new, or restored from a snapshot), its clock started. */
  async function launch(
    templateID: string,
    timeout: number,
    metadata: Record<string, string>,
    envVars: Record<string, string>,
    session: (id: string) => Promise<RemoteRunnerSession>,
    lifecycle?: { autoPause?: boolean; autoResume?: boolean },
  ): Promise<E2bStandInSandbox> {
    const id = `i${randomBytes(9).toString("hex")}`;
    const backend = await session(id);
    const now = Date.now();
    const s: E2bStandInSandbox = {
      sandboxID: id,
      templateID,
      state: "running",
      metadata,
      envVars,
      startedAt: new Date(now).toISOString(),
      endAt: new Date(now + timeout * 1000).toISOString(),
      envdAccessToken: randomBytes(16).toString("hex"),
      session: backend,
      processes: new Map(),
      nextPid: 100,
      connections: new Set(),
      metrics: [],
      lifecycle: {
        onTimeout: lifecycle?.autoPause ? "pause" : "kill",
        autoResume: lifecycle?.autoResume === true,
      },
      timeoutS: timeout,
    };
    sandboxes.set(id, s);
    schedule(s);
    return s;
  }

  // ---- control plane ----
  async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.headers["x-api-key"] !== apiKey)
      throw new ApiError(401, "Invalid API key, it must start with 'e2b_' prefix");
    const parts = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    const v2 = parts[0] === "v2";
    const p = v2 ? parts.slice(1) : parts;
    if (parts[0] === "snapshots" && parts.length === 1 && method === "GET") {
      const bySandbox = url.searchParams.get("sandboxID");
      const name = url.searchParams.get("name");
      const list = [...snapshots.entries()]
        .filter(([, snap]) => !bySandbox || snap.sandboxID === bySandbox)
        .filter(([raw]) => !name || findSnapshot(name)?.raw === raw)
        .map(([, snap]) => ({ snapshotID: snap.snapshotID, names: snap.names }));
      return json(res, 200, list);
    }
    if (parts[0] === "templates" && parts.length === 2 && method === "DELETE") {
      const found = findSnapshot(decodeURIComponent(parts[1]!));
      if (!found) throw new ApiError(404, `template '${decodeURIComponent(parts[1]!)}' not found`);
      snapshots.delete(found.raw);
      return json(res, 204);
    }
    if (p[0] !== "sandboxes") throw new ApiError(404, "not found");
    if (p.length === 1 && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as {
        templateID?: string;
        metadata?: Record<string, string>;
        envVars?: Record<string, string>;
        timeout?: number;
        autoPause?: boolean;
        autoPauseMemory?: boolean;
        autoResume?: { enabled?: boolean };
      };
      if (!body.templateID) throw new ApiError(400, "templateID is required");
      if (body.autoPause && body.autoPauseMemory === false)
        throw new ApiError(
          400,
          "the E2B stand-in cannot pause a sandbox without its memory (filesystem-only pause)",
        );
      // A template id that names a snapshot restores it (Sandbox.create(snapshotId)).
      const snap = findSnapshot(body.templateID)?.snap;
      if (!snap && templates !== "any" && !templates.includes(body.templateID))
        throw new ApiError(404, `template '${body.templateID}' not found`);
      const timeout = checkTimeout(body.timeout, CREATE_DEFAULT_TIMEOUT_S);
      checkConcurrency();
      const session = (id: string) =>
        snap
          ? options.backend.resumeSession({ ...snap.state, snapshot: snap.snapshot })
          : options.backend.createSession(backendDestination(id));
      const s = await launch(body.templateID, timeout, body.metadata ?? {}, body.envVars ?? {}, session, {
        autoPause: body.autoPause === true,
        autoResume: body.autoResume?.enabled === true,
      });
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
      const body = JSON.parse((await readBody(req)).toString() || "{}") as { name?: string };
      const name = body.name?.replace(/:default$/, "");
      if (name !== undefined && !/^[a-z0-9][a-z0-9._-]*$/i.test(name))
        throw new ApiError(400, `Invalid name: ${JSON.stringify(body.name)}`);
      const snapshot = await s.session.snapshot();
      if (!snapshot) throw new ApiError(500, "the backend made no snapshot");
      // A name is a template alias in the team's namespace; a second snapshot of one name replaces it.
      const named = name ? findSnapshot(`${TEAM}/${name}`) : undefined;
      if (named) snapshots.delete(named.raw);
      const raw = named?.raw ?? `snap_${randomBytes(8).toString("hex")}`;
      const names = name ? [`${TEAM}/${name}`] : [];
      const snapshotID = name ? `${TEAM}/${name}:default` : `${raw}:default`;
      snapshots.set(raw, { state: s.session.state(), snapshot, snapshotID, names, sandboxID: s.sandboxID });
      return json(res, 201, { snapshotID, names });
    }
    if (p[2] === "fork" && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as {
        timeout?: number;
        count?: number;
      };
      const count = body.count ?? 1;
      if (!Number.isInteger(count) || count < 1 || count > 100)
        throw new ApiError(400, "count must be between 1 and 100");
      const timeout = checkTimeout(body.timeout, CREATE_DEFAULT_TIMEOUT_S);
      if (s.state !== "running")
        throw new ApiError(409, `Sandbox ${JSON.stringify(s.sandboxID)} is not running`);
      // Checkpointed in place (it keeps its id and end), then each fork starts from that checkpoint.
      const snapshot = await s.session.snapshot();
      if (!snapshot) throw new ApiError(500, "the backend made no snapshot");
      const state = s.session.state();
      const results = [];
      for (let i = 0; i < count; i++) {
        try {
          checkConcurrency();
          const fork = await launch(s.templateID, timeout, { ...s.metadata }, { ...s.envVars }, () =>
            options.backend.resumeSession({ ...state, snapshot }),
          );
          results.push({ sandbox: created(fork) });
        } catch (e) {
          const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
          results.push({ error: { code: err.status, message: err.message } });
        }
      }
      return json(res, 201, results);
    }
    if (p[2] === "metrics" && method === "GET") {
      const start = Number(url.searchParams.get("start") ?? Math.floor(Date.parse(s.startedAt) / 1000));
      const end = Number(url.searchParams.get("end") ?? Math.ceil(Date.now() / 1000));
      return json(
        res,
        200,
        s.metrics
          .filter((m) => m.timestampUnix >= start && m.timestampUnix <= end)
          .map((m) => ({
            timestamp: new Date(m.timestampUnix * 1000).toISOString(),
            timestampUnix: m.timestampUnix,
            cpuCount: m.cpuCount,
            cpuUsedPct: m.cpuUsedPct,
            memUsed: m.memUsed,
            memTotal: m.memTotal,
            memCache: m.memCache,
            diskUsed: m.diskUsed,
            diskTotal: m.diskTotal,
          })),
      );
    }
    if (p[2] === "pause" && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as { memory?: boolean };
      if (body.memory === false)
        throw new ApiError(
          400,
          "the E2B stand-in cannot pause a sandbox without its memory (filesystem-only pause)",
        );
      if (s.state === "paused") throw new ApiError(409, `sandbox ${s.sandboxID} is already paused`);
      pauseNow(s);
      return json(res, 204);
    }
    if (p[2] === "connect" && method === "POST") {
      const body = JSON.parse((await readBody(req)).toString() || "{}") as { timeout?: number };
      const timeout = checkTimeout(body.timeout, CONNECT_DEFAULT_TIMEOUT_S, true);
      const resumed = s.state === "paused";
      if (resumed) resumeNow(s, timeout);
      else {
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
  /** The sandbox a request is for: E2B's edge routes only to running sandboxes (else 502, /health included). */
  function runningSandbox(id: string): E2bStandInSandbox {
    const s = sandboxes.get(id);
    if (s?.state !== "running") throw sandboxNotFound(id);
    return s;
  }

  /** envd's access check for everything but `/health` and `/files` (which take a token or a signature). */
  function checkToken(req: IncomingMessage, s: E2bStandInSandbox): void {
    if (req.headers["x-access-token"] !== s.envdAccessToken) {
      const message =
        "unauthorized access, please provide a valid access token or method signing if supported";
      throw new ApiError(401, message, "unauthenticated", { code: 401, message });
    }
  }

  /** The user an RPC acts as; an unknown one is envd's 401. */
  function userOf(req: IncomingMessage): EnvdUser {
    try {
      return rpcUser(req.headers.authorization);
    } catch (e) {
      throw new ApiError(401, (e as Error).message, "unauthenticated");
    }
  }

  const pidOf = (sel: unknown): number => {
    const p = sel as { pid?: number; selector?: { pid?: number } } | undefined;
    return Number(p?.pid ?? p?.selector?.pid);
  };

  function processFor(s: E2bStandInSandbox, sel: unknown): [number, StandInProcess] {
    const pid = pidOf(sel);
    const p = s.processes.get(pid);
    if (!p) throw new ApiError(404, `process with pid ${pid} not found`, "not_found");
    return [pid, p];
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
      pty?: { size?: { cols?: number; rows?: number } };
      stdin?: boolean;
    };
    const timeoutMs = Number(req.headers["connect-timeout-ms"] ?? "0");
    let pid: number;
    let proc: StandInProcess;
    if (rpc === "Start") {
      const p = msg.process ?? {};
      if (!p.cmd) throw new ApiError(400, "process.cmd is required", "invalid_argument");
      const user = userOf(req);
      // Every command runs as uid 1000 with no capabilities (the local runner's sandbox): root cannot be had.
      if (user.uid === 0)
        throw new ApiError(
          403,
          "the E2B stand-in runs every process as 'user' (uid 1000, no capabilities): it cannot run one as root",
          "permission_denied",
        );
      pid = s.nextPid++;
      // Without a cwd the process starts in the backend's workspace (the user's home, /home/user, by default).
      const cwd = p.cwd ? resolvePath(p.cwd, user) : null;
      // envd checks the working directory before it spawns: a missing one is invalid_argument, as is a file
      // (its spawn fails). The user's home is there already; another one is checked in the sandbox.
      if (cwd && cwd !== user.home) await checkCwd(s, cwd);
      // envd gives a process a stdin pipe unless `stdin: false` (the field defaults to true), and a terminal with `pty`.
      const pty = msg.pty ? { cols: msg.pty.size?.cols ?? 80, rows: msg.pty.size?.rows ?? 24 } : undefined;
      const stdin = pty === undefined && msg.stdin !== false;
      const handle = await s.session.startCommand!({
        command_id: `pid-${pid}`,
        program: p.cmd,
        args: p.args ?? [],
        cwd,
        env: Object.entries({ ...s.envVars, ...(p.envs ?? {}) }),
        ...(timeoutMs > 0 ? { timeout_ms: timeoutMs } : {}),
        ...(pty ? { pty } : stdin ? { stdin: true } : {}),
      });
      proc = {
        handle,
        log: new OutputLog(),
        cmd: p.cmd,
        args: p.args ?? [],
        envs: p.envs ?? {},
        ...(cwd ? { cwd } : {}),
        ...(pty || stdin ? { input: { pty: pty !== undefined, closed: false } } : {}),
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
      [pid, proc] = processFor(s, msg.process);
    }
    // Start streams the whole output; Connect only what comes after it (envd does not replay).
    const follower = proc.log.follow({ replay: rpc === "Start" });
    const field = (stream: string) => (proc.input?.pty ? "pty" : stream);
    res.on("close", follower.stop);
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.write(envelope({ event: { start: { pid } } }));
    const keepalive = setInterval(() => res.write(envelope({ event: { keepalive: {} } })), 20_000);
    try {
      for await (const chunk of follower.output) {
        res.write(
          envelope({
            event: { data: { [field(chunk.stream)]: Buffer.from(chunk.data).toString("base64") } },
          }),
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

  /** envd's cwd check: `cwd '<path>' does not exist` (invalid_argument); a file fails the spawn the same way. */
  async function checkCwd(s: E2bStandInSandbox, cwd: string): Promise<void> {
    let type: unknown;
    try {
      type = ((await fsOp(s.session, "stat", { path: cwd })).entry as { type?: unknown } | undefined)?.type;
    } catch (e) {
      if (e instanceof EnvdFsError && e.connectCode === "not_found")
        throw new ApiError(400, `cwd '${cwd}' does not exist`, "invalid_argument");
      throw e;
    }
    if (type !== "FILE_TYPE_DIRECTORY")
      throw new ApiError(400, `fork/exec /bin/bash: chdir ${cwd}: not a directory`, "invalid_argument");
  }

  /** `filesystem.Filesystem/WatchDir`: inotify in the sandbox, its events as they come, until the client goes. */
  async function watchDir(req: IncomingMessage, res: ServerResponse, s: E2bStandInSandbox): Promise<void> {
    const msg = readFirstEnvelope(await readBody(req)) as {
      path?: string;
      recursive?: boolean;
      includeEntry?: boolean;
    };
    const path = resolvePath(String(msg.path ?? ""), userOf(req));
    const handle = await startWatch(s.session, {
      path,
      recursive: msg.recursive === true,
      includeEntry: msg.includeEntry === true,
    });
    const stop = () => void handle.kill("SIGKILL").catch(() => false);
    res.on("close", stop);
    let keepalive: ReturnType<typeof setInterval> | undefined;
    let pending = "";
    try {
      for await (const chunk of handle.output) {
        if (chunk.stream !== "stdout") continue;
        pending += Buffer.from(chunk.data).toString("utf8");
        let nl = pending.indexOf("\n");
        while (nl >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          nl = pending.indexOf("\n");
          if (!line.trim()) continue;
          const { event, err } = watchEvent(line);
          if (err) throw new ApiError(CONNECT_STATUS[err.code] ?? 500, err.message, err.code);
          if (!event) continue;
          if (!res.headersSent) {
            res.writeHead(200, { "content-type": "application/connect+json" });
            keepalive = setInterval(() => res.write(envelope({ keepalive: {} })), 20_000);
          }
          res.write(envelope(event));
        }
      }
      if (!res.destroyed && res.headersSent) res.end(envelope({}, END_STREAM));
    } finally {
      if (keepalive) clearInterval(keepalive);
      res.off("close", stop);
      stop();
    }
  }

  /** A filesystem RPC in the sandbox; its envd errors become Connect errors. */
  async function fs(s: E2bStandInSandbox, op: Parameters<typeof fsOp>[1], body: Record<string, unknown>) {
    try {
      return await fsOp(s.session, op, body);
    } catch (e) {
      if (e instanceof EnvdFsError)
        throw new ApiError(CONNECT_STATUS[e.connectCode] ?? 500, e.message, e.connectCode);
      throw e;
    }
  }

  async function unary(
    req: IncomingMessage,
    s: E2bStandInSandbox,
    service: string,
    rpc: string,
  ): Promise<unknown> {
    const body = JSON.parse((await readBody(req)).toString() || "{}") as Record<string, unknown>;
    if (service === "process.Process") {
      if (rpc === "List")
        return {
          processes: [...s.processes.entries()].map(([pid, p]) => ({
            pid,
            config: { cmd: p.cmd, args: p.args, envs: p.envs, ...(p.cwd ? { cwd: p.cwd } : {}) },
          })),
        };
      const [, p] = processFor(s, body.process);
      if (rpc === "SendSignal") {
        await p.handle.kill(body.signal === "SIGNAL_SIGTERM" || body.signal === 15 ? "SIGTERM" : "SIGKILL");
        return {};
      }
      if (rpc === "SendInput") {
        const input = (body.input ?? {}) as { stdin?: string; pty?: string };
        const toPty = input.pty !== undefined;
        if (!toPty && input.stdin === undefined)
          throw new ApiError(501, "invalid input type <nil>", "unimplemented");
        const fail = (m: string) => new ApiError(500, m, "internal");
        if (toPty && !p.input?.pty)
          throw fail(
            "error writing to tty: tty not assigned to process — input should be written to the stdin, not the tty",
          );
        if (!toPty && p.input?.pty)
          throw fail(
            "error writing to stdin: tty assigned to process — input should be written to the pty, not the stdin",
          );
        if (!p.input || p.input.closed || !p.handle.write)
          throw fail("error writing to stdin: stdin not enabled or closed");
        await p.handle
          .write(Buffer.from(String(toPty ? input.pty : input.stdin), "base64"))
          .catch((e: Error) => {
            throw fail(`error writing to ${toPty ? "tty" : "stdin"}: ${e.message}`);
          });
        return {};
      }
      if (rpc === "CloseStdin") {
        if (p.input?.pty)
          throw new ApiError(
            500,
            "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead",
            "unknown",
          );
        if (p.input && !p.input.closed) {
          p.input.closed = true;
          await p.handle.closeStdin?.();
        }
        return {};
      }
      if (rpc === "Update") {
        const size = (body.pty as { size?: { cols?: number; rows?: number } } | undefined)?.size;
        if (size) {
          if (!p.input?.pty)
            throw new ApiError(500, "error resizing tty: tty not assigned to process", "internal");
          await p.handle.resize?.(size.cols ?? 0, size.rows ?? 0);
        }
        return {};
      }
    }
    if (service === "filesystem.Filesystem") {
      const user = userOf(req);
      const abs = (v: unknown) => {
        try {
          return resolvePath(String(v ?? ""), user);
        } catch (e) {
          throw new ApiError(400, (e as Error).message, "invalid_argument");
        }
      };
      if (rpc === "Stat") return fs(s, "stat", { path: abs(body.path) });
      if (rpc === "ListDir")
        return fs(s, "listdir", { path: abs(body.path), depth: Number(body.depth ?? 0) || 1 });
      if (rpc === "MakeDir") return fs(s, "makedir", { path: abs(body.path) });
      if (rpc === "Move")
        return fs(s, "move", { source: abs(body.source), destination: abs(body.destination) });
      if (rpc === "Remove") return fs(s, "remove", { path: abs(body.path) });
    }
    throw new ApiError(404, `unknown method ${service}/${rpc}`, "unimplemented");
  }

  /** `GET|POST /files`: the access token or a signed URL; paths resolved as the user; gzip both ways. */
  async function files(req: IncomingMessage, res: ServerResponse, url: URL, s: E2bStandInSandbox) {
    const q = url.searchParams;
    const operation = req.method === "GET" ? "read" : "write";
    const header = req.headers["x-access-token"];
    const denied = checkFileAccess({
      accessToken: s.envdAccessToken,
      headerToken: typeof header === "string" ? header : undefined,
      signature: q.get("signature"),
      expiration: q.get("signature_expiration"),
      username: q.get("username"),
      path: q.get("path") ?? "",
      operation,
    });
    if (denied) throw new ApiError(401, denied);
    let user: EnvdUser;
    try {
      user = lookupUser(q.get("username"));
    } catch (e) {
      throw new ApiError(401, (e as Error).message);
    }
    const resolve = (p: string) => {
      try {
        return resolvePath(p, user);
      } catch (e) {
        throw new ApiError(400, `error resolving path: ${(e as Error).message}`);
      }
    };
    if (req.method === "GET") {
      const path = resolve(q.get("path") ?? "");
      const r = await s.session.readFile({ path }).catch((e: Error & { code?: unknown }) => {
        // envd answers 404 for a missing path (the SDK turns it into FileNotFoundError).
        if (e.code === "not_found" || /no such file/i.test(e.message))
          throw new ApiError(404, `path '${path}' does not exist`);
        throw new ApiError(400, e.message);
      });
      const gzip = acceptsGzip(req.headers["accept-encoding"]);
      const data = gzip ? gzipSync(r.contents) : Buffer.from(r.contents);
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": data.length,
        ...(gzip ? { "content-encoding": "gzip", vary: "Accept-Encoding" } : {}),
      });
      return void res.end(data);
    }
    if (req.method !== "POST") throw new ApiError(405, "method not allowed");
    const encoding = String(req.headers["content-encoding"] ?? "identity")
      .split(";")[0]!
      .trim()
      .toLowerCase();
    if (encoding !== "identity" && encoding !== "gzip")
      throw new ApiError(400, `unsupported Content-Encoding: ${encoding}, supported: [gzip]`);
    const raw = await readBody(req);
    let body: Buffer;
    try {
      body = encoding === "gzip" ? gunzipSync(raw) : raw;
    } catch (e) {
      throw new ApiError(400, `error decompressing the body: ${(e as Error).message}`);
    }
    const metadata = metadataHeaders(req);
    const type = String(req.headers["content-type"] ?? "");
    const given = q.get("path");
    const parts = type.startsWith("multipart/")
      ? parseMultipart(body, type).map((p) => ({ path: given ?? p.filename ?? "", data: p.data }))
      : [{ path: given ?? "", data: body }];
    if (!type.startsWith("multipart/") && given === null)
      throw new ApiError(400, "path query parameter is required for raw body upload");
    const out: Array<Record<string, unknown>> = [];
    const placed: Array<{ staged: string | null; path: string }> = [];
    for (const f of parts) {
      const path = resolve(f.path);
      if (out.some((o) => o.path === path))
        throw new ApiError(
          400,
          `you cannot upload multiple files to the same path '${path}' in one upload request, only the first specified file was uploaded`,
        );
      // Staged in the sandbox's /tmp, then written over the destination in place, as envd writes. A backend whose
      // file API cannot reach /tmp gets the file at its destination directly (replaced, not written over).
      const contents = new Uint8Array(f.data);
      const staged = `/tmp/.e2b-standin-upload-${randomBytes(8).toString("hex")}`;
      const ok = await s.session.writeFile({ path: staged, contents }).then(
        () => true,
        () => false,
      );
      if (!ok)
        await s.session.writeFile({ path, contents }).catch((e: Error) => {
          throw new ApiError(400, e.message);
        });
      placed.push({ staged: ok ? staged : null, path });
      out.push({ path, name: posix.basename(path), type: "file" });
    }
    // Each upload replaces the files' metadata (none sent: cleared), read back for the answer.
    const meta = await fsOp(s.session, "place", { files: placed, metadata }).catch((e: unknown) => {
      if (e instanceof EnvdFsError)
        throw new ApiError(e.connectCode === "invalid_argument" ? 400 : 500, e.message);
      throw e;
    });
    (meta.metadata as Array<Record<string, string>>).forEach((m, i) => {
      if (Object.keys(m).length > 0) out[i]!.metadata = m;
    });
    return json(res, 200, out);
  }

  /** The sandbox's envd: `/health`, `/files`, `/envs`, `/metrics` and the Connect services. */
  async function envd(req: IncomingMessage, res: ServerResponse, url: URL, s: E2bStandInSandbox) {
    if (url.pathname === "/health") return json(res, 204);
    s.connections.add(res);
    res.on("close", () => s.connections.delete(res));
    if (url.pathname === "/files") return files(req, res, url, s);
    checkToken(req, s);
    if (url.pathname === "/envs" && req.method === "GET") return json(res, 200, s.envVars);
    if (url.pathname === "/metrics" && req.method === "GET") return json(res, 200, await envdMetrics(s));
    const rpcMatch = /^\/(process\.Process|filesystem\.Filesystem)\/(\w+)$/.exec(url.pathname);
    if (rpcMatch) {
      const [, service, rpc] = rpcMatch;
      if (service === "process.Process" && (rpc === "Start" || rpc === "Connect"))
        return stream(req, res, s, rpc);
      if (service === "filesystem.Filesystem" && rpc === "WatchDir") return watchDir(req, res, s);
      return json(res, 200, await unary(req, s, service!, rpc!));
    }
    throw new ApiError(404, "not found");
  }

  /** envd's `/metrics` of the sandbox, measured inside it. */
  async function envdMetrics(s: E2bStandInSandbox) {
    const m = await sandboxMetrics(s.session, ENVD_USERS.user!.home, s.cpuTicks);
    return {
      ts: Math.floor(Date.now() / 1000),
      cpu_count: m.cpuCount,
      cpu_used_pct: m.cpuUsedPct,
      mem_total: m.memTotal,
      mem_used: m.memUsed,
      mem_cache: m.memCache,
      mem_total_mib: Math.floor(m.memTotal / 1048576),
      mem_used_mib: Math.floor(m.memUsed / 1048576),
      disk_used: m.diskUsed,
      disk_total: m.diskTotal,
    };
  }

  /** A signed `/files` URL without routing headers: the running sandbox whose access token signed it. */
  function signedBy(req: IncomingMessage, url: URL): E2bStandInSandbox | undefined {
    const q = url.searchParams;
    const signature = q.get("signature");
    if (!signature) return undefined;
    const exp = q.get("signature_expiration");
    const op = req.method === "GET" ? "read" : "write";
    for (const s of sandboxes.values()) {
      const expected = fileSignature(
        q.get("path") ?? "",
        op,
        q.get("username") ?? "",
        s.envdAccessToken,
        exp === null ? undefined : Number.parseInt(exp, 10),
      );
      if (signatureMatches(expected, signature)) return s;
    }
    return undefined;
  }

  /** Where a request goes: a sandbox port by `Host: <port>-<id>.<domain>` or the `E2b-Sandbox-*` headers. */
  function routeOf(req: IncomingMessage): { id: string; port: number } | undefined {
    const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
    const m = /^(\d+)-([^.]+)\.(.+)$/.exec(host);
    if (m && m[3] === domain) return { id: m[2]!, port: Number(m[1]) };
    const id = req.headers["e2b-sandbox-id"];
    if (id === undefined) return undefined;
    return { id: String(id), port: Number(req.headers["e2b-sandbox-port"] ?? ENVD_PORT) || ENVD_PORT };
  }

  const handle: RequestListener = (req, res) => {
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
      const route = routeOf(req);
      // A signed /files URL carries no routing header: it is the sandbox whose token signed it.
      const signed = !route && url.pathname === "/files" ? signedBy(req, url) : undefined;
      const isEnvd = route !== undefined || url.pathname === "/health" || url.searchParams.has("signature");
      const streaming = /^\/(process\.Process\/(Start|Connect)|filesystem\.Filesystem\/WatchDir)$/.test(
        url.pathname,
      );
      try {
        if (route && route.port !== ENVD_PORT) {
          // Traffic to a paused sandbox with auto-resume wakes it (for as long as it was created with).
          const paused = sandboxes.get(route.id);
          if (paused?.state === "paused" && paused.lifecycle.autoResume) resumeNow(paused, paused.timeoutS);
          const s = runningSandbox(route.id);
          const { url: target } = await s.session.exposePort({ port: route.port });
          if (!target) throw new ApiError(502, "the backend exposes no URL for this port");
          await proxyToPort(req, res, target, s.sandboxID, route.port);
        } else if (route) await envd(req, res, url, runningSandbox(route.id));
        else if (signed) await envd(req, res, url, signed);
        else if (url.pathname === "/health") json(res, 204);
        else if (isEnvd) throw new ApiError(401, "invalid signature");
        else await control(req, res, url);
      } catch (error) {
        req.resume();
        const e = error instanceof ApiError ? error : new ApiError(500, "internal error", "internal");
        // A streaming RPC's error is the end of its stream (HTTP 200), as Connect servers send it.
        if (res.headersSent || (streaming && e.connectCode && e.body === undefined)) {
          if (!res.headersSent) res.writeHead(200, { "content-type": "application/connect+json" });
          res.end(envelope({ error: { code: e.connectCode ?? "internal", message: e.message } }, END_STREAM));
          return;
        }
        if (e.body !== undefined) json(res, e.status, e.body);
        else if (isEnvd && e.connectCode)
          json(res, CONNECT_STATUS[e.connectCode] ?? e.status, { code: e.connectCode, message: e.message });
        else json(res, e.status, { code: e.status, message: e.message });
      }
    })();
  };
  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  // The same edge over TLS, for `https://<port>-<id>.<domain>`: requests arrive with that Host, routed as above.
  const tlsEdge = options.httpsEdge
    ? await startHttpsInterceptProxy({ hosts: { [`*.${domain}`]: handle } })
    : undefined;
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
    ...(tlsEdge ? { httpsEdge: { proxyUrl: tlsEdge.url, caCertFile: tlsEdge.ca.certFile } } : {}),
    async stop() {
      await tlsEdge?.stop();
      for (const s of [...sandboxes.values()]) await destroy(s);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
