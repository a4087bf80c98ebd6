import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  RunnerError,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  SessionNotFoundError,
  secretValuesFromEnv,
} from "@roder/runner-contract";
import { commandRoutes } from "./http-server-commands.js";
import { connectionLimiter } from "./http-server-connections.js";
import type { Entry, ServerContext, SessionRequest } from "./http-server-context.js";
import { fileRoute } from "./http-server-files.js";
import { answerClientError, errorAnswer, readBody, send } from "./http-server-io.js";
import type { RunnerServer, RunnerServerOptions } from "./http-server-options.js";
import { DEFAULT_MAX_OUTPUT_LIMIT_BYTES, HttpError } from "./http-server-policy.js";
import { portRoutes } from "./http-server-ports.js";
import { sessionRoutes } from "./http-server-sessions.js";

export type { RunnerServer, RunnerServerOptions } from "./http-server-options.js";
export { HOST_PATH_CONFIG_KEYS, type RunnerServerPolicy } from "./http-server-policy.js";

/** Default largest file a client may PUT (the backend's disk is the real bound). */
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024 * 1024;

/** The server's own session ids: `ses_` + 128 random bits. */
const SESSION_ID = /^ses_[0-9a-f]{32}$/;
/** Ids of sessions closed or expired are remembered this long (a late DELETE is still a 204). */
const CLOSED_KEPT = 10_000;

export function createRunnerServer(options: RunnerServerOptions): RunnerServer {
  const env = options.env ?? process.env;
  const tokenEnv = options.tokenEnv ?? "RODER_RUNNER_SERVER_TOKEN";
  const token = options.token ?? env[tokenEnv];
  if (!token)
    throw new RunnerError("missing_secret", `the runner server needs a bearer token: set ${tokenEnv}`);
  const tokenDigest = createHash("sha256").update(token).digest();
  const maxFile = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  // A backend without streamed files is served whole files in memory: bounded apart.
  const maxBufferedFile = Math.min(maxFile, options.maxBufferedFileBytes ?? 512 * 1024 * 1024);
  const maxJson = options.maxJsonBytes ?? 8 * 1024 * 1024;
  const base = (options.basePath ?? "").replace(/\/+$/, "");
  const provider = options.provider;
  const sessions = new Map<string, Entry>();
  /** Snapshots by the opaque id handed to clients; the backend's ref never leaves the server. */
  const snapshots = new Map<string, { state: RunnerSessionState; snapshot: RunnerSnapshotRef }>();
  /** Ids closed or expired, oldest first (a Set keeps insertion order), so a second DELETE is a 204. */
  const closedIds = new Set<string>();
  /** The session a request is for (kept after the session is closed: its error is scrubbed all the same). */
  const entryOf = new WeakMap<IncomingMessage, Entry>();
  /** Preview URLs handed out: unguessable id → the session and port they reach (gone with the session). */
  const previews = new Map<string, { sessionId: string; port: number }>();
  const forget = (id: string) => {
    for (const pv of sessions.get(id)?.previews.values() ?? []) previews.delete(pv);
    sessions.delete(id);
    closedIds.add(id);
    if (closedIds.size > CLOSED_KEPT) closedIds.delete(closedIds.values().next().value as string);
  };
  const idleMs = (options.defaultTtlSeconds ?? 3600) * 1000;
  const enforced: Record<string, unknown> = {
    ...(options.isolation === "bwrap" ? { isolation: "bwrap" } : {}),
    ...options.enforceConfig,
  };
  const secrets = () => [token, ...secretValuesFromEnv(env)];
  let closing = false;
  let server: Server | undefined;
  const ctx: ServerContext = {
    provider,
    options,
    sessions,
    snapshots,
    previews,
    maxJson,
    maxFile,
    maxBufferedFile,
    idleMs,
    enforced,
    basePath: base,
    secrets,
    isClosing: () => closing,
    expired: (e: Entry, now = Date.now()) => expired(e, now),
    readJson,
    publicBase,
  };
  const sessionsApi = sessionRoutes(ctx);
  const commands = commandRoutes(ctx);
  const ports = portRoutes(ctx);

  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer (.+)$/.exec(header);
    // Digests of equal length: the comparison time does not depend on where the tokens differ.
    const given = createHash("sha256")
      .update(m?.[1] ?? "")
      .digest();
    return timingSafeEqual(given, tokenDigest) && m !== null;
  };

  async function readJson(req: IncomingMessage): Promise<string> {
    return (await readBody(req, maxJson)).toString("utf8");
  }

  function sendError(res: ServerResponse, error: unknown, e?: Entry): void {
    const { status, payload } = errorAnswer(error, secrets(), e?.hostPaths ?? []);
    send(res, status, JSON.stringify({ error: payload }));
  }

  const expired = (e: Entry, now = Date.now()) =>
    e.active === 0 && e.expiresAt !== null && e.expiresAt <= now;

  function entry(id: string): Entry {
    const e = sessions.get(id);
    if (e && expired(e)) {
      forget(id);
      void e.session.close().catch(() => {});
      throw new SessionNotFoundError({
        providerId: provider.id,
        sessionId: id,
        message: `session '${id}' expired`,
      });
    }
    if (!e)
      throw new SessionNotFoundError({
        providerId: provider.id,
        sessionId: id,
        message: `no session '${id}' on this server`,
      });
    return e;
  }

  async function reapExpired(): Promise<string[]> {
    const now = Date.now();
    const due = [...sessions].filter(([, e]) => expired(e, now));
    for (const [id] of due) forget(id);
    await Promise.all(due.map(([, e]) => e.session.close().catch(() => {})));
    return due.map(([id]) => id);
  }
  // Unref'd: the reaper never keeps a process alive; close() stops it.
  const reaper = setInterval(() => void reapExpired(), options.reapIntervalMs ?? 30_000);
  reaper.unref();

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!closing && (await ports.previewRoute(req, res))) return;
    // Worded so that it still reads after the Rust client's redaction of "token", "secret", "authorization".
    if (!authorized(req)) throw new HttpError(401, "unauthorized", "missing or wrong bearer credential");
    // Hostile targets ("//", "%E0%A4%A") are the client's error, not a 500.
    const badTarget = () => new HttpError(400, "invalid_request", "the request path is not a valid URL path");
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      throw badTarget();
    }
    if (base && !url.pathname.startsWith(base)) throw new HttpError(404, "not_found", "unknown route");
    const path = url.pathname.slice(base.length);
    const parts = path
      .split("/")
      .filter(Boolean)
      .map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw badTarget();
        }
      });
    const m = req.method ?? "GET";
    if (closing) throw new HttpError(503, "shutting_down", "the server is shutting down");

    if (parts[0] === "capabilities" && parts.length === 1 && m === "GET") {
      return send(
        res,
        200,
        JSON.stringify({
          provider_id: provider.id,
          capabilities: capabilities(),
          limits: {
            max_file_bytes: maxFile,
            // Files stream both ways (GET honours `Range`) when the backend streams them; else up to this.
            max_buffered_file_bytes: maxBufferedFile,
            max_json_bytes: maxJson,
            streaming: true,
            reattach: provider.limits().attach !== "none",
            // The operator's policy, so a client knows what it will be refused before asking.
            policy: {
              isolation: options.isolation ?? null,
              host_network: options.allowHostNetwork === true,
              keep_workspaces: options.allowKeepWorkspaces === true,
              host_paths: options.allowHostPaths === true,
              max_output_limit_bytes: options.maxOutputLimitBytes ?? DEFAULT_MAX_OUTPUT_LIMIT_BYTES,
              strict_config: options.strictConfig === true,
              idle_ttl_seconds: idleMs / 1000 || null,
            },
            port_previews: "proxy",
          },
        }),
      );
    }
    if (parts[0] === "snapshots" && parts.length === 2 && m === "DELETE") {
      // Idempotent: the ref is forgotten (it can no longer be restored), whether or not it was known.
      snapshots.delete(parts[1]!);
      return send(res, 204);
    }
    if (parts[0] !== "sessions") throw new HttpError(404, "not_found", "unknown route");
    if (parts.length === 1 && m === "POST") return sessionsApi.createSession(req, res);
    if (parts.length === 1 && m === "GET") return sessionsApi.listSessions(url, res);
    const id = parts[1];
    if (!id) throw new HttpError(404, "not_found", "unknown route");
    if (parts.length === 2) {
      if (m === "GET") {
        const e = entry(id);
        return send(
          res,
          200,
          JSON.stringify({
            session_id: id,
            destination_id: e.destinationId,
            workspace_root: sessionsApi.workspaceRoot(e.session),
            file_scope: sessionsApi.fileScope(e.session),
          }),
        );
      }
      if (m === "DELETE") {
        const e = sessions.get(id);
        // Idempotent: a session already closed or expired (or lost with a restart) is gone, as asked.
        if (!e) {
          if (closedIds.has(id) || SESSION_ID.test(id)) return send(res, 204);
          throw new SessionNotFoundError({ providerId: provider.id, sessionId: id });
        }
        forget(id);
        await e.session.close();
        return send(res, 204);
      }
    }
    const e = entry(id);
    entryOf.set(req, e);
    e.active++;
    try {
      return await sessionRoute({ req, res, url, parts, e, id });
    } finally {
      e.active--;
      if (e.idleMs !== null) e.expiresAt = Date.now() + e.idleMs;
    }
  }

  /** What the server can do for clients: the backend's capabilities less what the policy refuses. */
  function capabilities() {
    const c = provider.capabilities();
    return {
      ...c,
      mounts: { ...c.mounts, provider_native: c.mounts.provider_native && options.allowHostPaths === true },
    };
  }

  /** Where clients reach this server (for port previews). */
  function publicBase(req: IncomingMessage): string {
    if (options.publicUrl) return options.publicUrl.replace(/\/+$/, "");
    const host = req.headers.host ?? "127.0.0.1";
    return `http://${host}${base}`;
  }

  async function sessionRoute(r: SessionRequest): Promise<void> {
    const { req, res, url, parts, e } = r;
    const m = req.method ?? "GET";
    const path = url.pathname.slice(base.length);
    const sub = parts[2];
    if (sub === "ports" && (await ports.route(r))) return;
    if (sub === "commands" && (await commands.route(r))) return;
    if (sub === "files" && parts.length === 3 && (await fileRoute(ctx, r))) return;
    if (parts.length === 3 && m === "POST" && sub === "artifacts")
      return sessionsApi.exportArtifact(req, res, e);
    if (parts.length === 3 && m === "POST" && sub === "snapshots") return sessionsApi.snapshot(req, res, e);
    throw new HttpError(404, "not_found", `no route ${m} ${path}`);
  }

  const connections = connectionLimiter(options.maxConnections ?? 1024);
  const onConnection = connections.onConnection;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    connections.track(req, res);
    const started = Date.now();
    res.on("finish", () =>
      options.onRequest?.({
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        status: res.statusCode,
        ms: Date.now() - started,
      }),
    );
    route(req, res).catch((error) => {
      // Drain what the client still sends so it sees the answer.
      req.resume();
      sendError(res, error, entryOf.get(req));
    });
  };

  return {
    handler,
    sessionCount: () => sessions.size,
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        // Slow or half-open connections cannot hold the server: headers must arrive within headersTimeoutMs
        // (checked every second), and connections past maxConnections are dropped at once.
        server = createServer(
          {
            requestTimeout: 0,
            headersTimeout: options.headersTimeoutMs ?? 30_000,
            connectionsCheckingInterval: 1_000,
            keepAliveTimeout: 5_000,
          },
          handler,
        );
        server.on("connection", onConnection);
        server.on("error", reject);
        server.on("clientError", answerClientError);
        server.listen(port, host, () => {
          const addr = server!.address() as AddressInfo;
          resolve({
            url: `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}${base}`,
            port: addr.port,
          });
        });
      });
    },
    reapExpired,
    async close() {
      closing = true;
      clearInterval(reaper);
      const closed = server ? new Promise<void>((r) => server!.close(() => r())) : Promise.resolve();
      server?.closeIdleConnections();
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.all(all.map((e) => e.session.close().catch(() => {})));
      server?.closeAllConnections();
      await closed;
    },
  };
}

/** Starts a server in front of `provider` and resolves once it listens (what `roder-runner serve` runs). */
export async function serveRunner(
  options: RunnerServerOptions & { port?: number; host?: string },
): Promise<RunnerServer & { url: string; port: number }> {
  const server = createRunnerServer(options);
  const { url, port } = await server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  return Object.assign(server, { url, port });
}
