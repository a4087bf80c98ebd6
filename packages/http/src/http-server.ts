import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import {
  CommandNotFoundError,
  codecs,
  describeProviderLimits,
  type EnvSource,
  type RemoteRunnerProvider,
  type RemoteRunnerSession,
  type RunnerCommandHandle,
  RunnerError,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  redactSecrets,
  SessionNotFoundError,
  secretValuesFromEnv,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { z } from "zod";
import { statusForError, type WireErrorBody } from "./http-errors.js";

export interface RunnerServerOptions {
  /** The backend every session runs on (e.g. the local provider). */
  provider: RemoteRunnerProvider;
  /** Bearer token; default: the value of `tokenEnv` in `env`. */
  token?: string;
  tokenEnv?: string;
  env?: EnvSource;
  /** Largest file body accepted by `PUT /files` (default 512 MiB). */
  maxFileBytes?: number;
  /** Largest JSON body (default 8 MiB). */
  maxJsonBytes?: number;
  /** Path prefix, e.g. `/v1` (default none). */
  basePath?: string;
  /** Called once per request, for logs; never receives bodies or headers. */
  onRequest?: (entry: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Let clients name paths of the server's own host: manifest entry sources (copied into the workspace),
   * `provider_native` mounts (bind mounts) and the backend config keys in `HOST_PATH_CONFIG_KEYS`. Default
   * `false`: a token holder runs commands in sandboxes, but cannot read the server's files through them.
   */
  allowHostPaths?: boolean;
  /** Backend config keys the server sets itself, over what clients send (e.g. `{ isolation: "bwrap" }`). */
  enforceConfig?: Record<string, unknown>;
  /** Lifetime of a session created without `ttl_seconds` (default: none, it lives until closed). */
  defaultTtlSeconds?: number;
  /** How often expired sessions are closed (default 30 s; an expired session is refused at once anyway). */
  reapIntervalMs?: number;
}

export interface RunnerServer {
  handler(req: IncomingMessage, res: ServerResponse): void;
  listen(port?: number, host?: string): Promise<{ url: string; port: number }>;
  /** Stops accepting requests and closes every session. */
  close(): Promise<void>;
  /** Live session count (for tests and metrics). */
  sessionCount(): number;
  /** Closes the sessions past their expiry now (the reaper timer does it every `reapIntervalMs`); their ids. */
  reapExpired(): Promise<string[]>;
}

const CreateSessionBodySchema = z.object({
  destination_id: z.string().min(1),
  provider_id: z.string().optional(),
  manifest: z.unknown().optional(),
  config: z.unknown().optional(),
  /** Resume from a snapshot this server made. */
  snapshot: z.unknown().optional(),
  /** Modal-style cloud bucket mounts; secrets by ref, resolved from the server's env. */
  mounts: z
    .array(
      z.object({
        kind: z.enum(["s3", "r2", "gcs"]),
        bucket: z.string().min(3),
        path: z.string().min(1),
        endpoint: z.string().url().optional(),
        key_prefix: z.string().optional(),
        read_only: z.boolean().default(true),
        secret: z.object({ id: z.string().min(1) }).optional(),
      }),
    )
    .default(() => []),
  /** Owner tag, listed by `GET /sessions?owner=` (for sweepers). */
  owner: z.string().min(1).max(256).optional(),
  /** Lifetime: the server closes the session this many seconds after creation. */
  ttl_seconds: z
    .number()
    .int()
    .positive()
    .max(365 * 24 * 3600)
    .optional(),
});

/** fs errors that only a client's path can cause (a name over 255 bytes, a file used as a directory, …). */
const PATH_ERRNOS = new Set(["ENAMETOOLONG", "ENOTDIR", "ELOOP", "EISDIR"]);

/** The errno of such an error, raw from a backend or wrapped in its generic `io_error`. */
function pathErrno(error: unknown): string | undefined {
  if (RunnerError.isInstance(error) && error.code !== "io_error") return undefined;
  for (const e of [error, (error as { cause?: unknown } | null)?.cause]) {
    const code = (e as NodeJS.ErrnoException | null | undefined)?.code;
    if (typeof code === "string" && PATH_ERRNOS.has(code)) return code;
  }
  return undefined;
}

/** A JSON error for requests Node's HTTP parser refuses before any handler runs (unknown method, bad framing). */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || error.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const [status, text] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout"]
        : [400, "Bad Request"];
  const body = JSON.stringify({
    error: { code: "invalid_request", message: `malformed HTTP request (${text})` },
  });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Keys the Rust hosted client may put in `config` (redacted) that are the client's business, not the backend's. */
/** Backend config keys that name paths of the server's host (refused from clients unless `allowHostPaths`). */
export const HOST_PATH_CONFIG_KEYS = ["workspace_dir", "snapshot_dir", "read_roots", "root"] as const;

const CLIENT_KEYS = new Set(["token", "api_key", "secret", "base_url", "backend_config"]);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Entry {
  session: RemoteRunnerSession;
  destinationId: string;
  owner: string | null;
  /** Epoch ms after which the session is closed; null: never. */
  expiresAt: number | null;
}

export function createRunnerServer(options: RunnerServerOptions): RunnerServer {
  const env = options.env ?? process.env;
  const tokenEnv = options.tokenEnv ?? "RODER_RUNNER_SERVER_TOKEN";
  const token = options.token ?? env[tokenEnv];
  if (!token)
    throw new RunnerError("missing_secret", `the runner server needs a bearer token: set ${tokenEnv}`);
  const tokenDigest = createHash("sha256").update(token).digest();
  const maxFile = options.maxFileBytes ?? 512 * 1024 * 1024;
  const maxJson = options.maxJsonBytes ?? 8 * 1024 * 1024;
  const base = (options.basePath ?? "").replace(/\/+$/, "");
  const provider = options.provider;
  const sessions = new Map<string, Entry>();
  const snapshots = new Map<string, { state: RunnerSessionState; snapshot: RunnerSnapshotRef }>();
  const secrets = () => [token, ...secretValuesFromEnv(env)];
  let closing = false;
  let server: Server | undefined;

  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer (.+)$/.exec(header);
    // Digests of equal length: the comparison time does not depend on where the tokens differ.
    const given = createHash("sha256")
      .update(m?.[1] ?? "")
      .digest();
    return timingSafeEqual(given, tokenDigest) && m !== null;
  };

  async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > limit)
      throw new HttpError(
        413,
        "payload_too_large",
        `body of ${declared} bytes is over the limit of ${limit}`,
      );
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit)
        throw new HttpError(413, "payload_too_large", `body is over the limit of ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, size);
  }

  async function readJson(req: IncomingMessage): Promise<string> {
    return (await readBody(req, maxJson)).toString("utf8");
  }

  function send(
    res: ServerResponse,
    status: number,
    body?: string | Uint8Array,
    type = "application/json",
  ): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (body === undefined) {
      res.writeHead(status, { "content-length": "0" });
      res.end();
      return;
    }
    const buf = typeof body === "string" ? Buffer.from(body) : body;
    res.writeHead(status, { "content-type": type, "content-length": String(buf.length) });
    res.end(buf);
  }

  function sendError(res: ServerResponse, error: unknown): void {
    let status: number;
    let payload: WireErrorBody["error"];
    if (error instanceof HttpError) {
      status = error.status;
      payload = { code: error.code, message: error.message };
    } else if (pathErrno(error)) {
      // A path the client gave that the filesystem cannot use (raw or wrapped as io_error): a 400, not a 500.
      status = 400;
      payload = { code: "invalid_request", message: `the path is not usable (${pathErrno(error)})` };
    } else if (RunnerError.isInstance(error)) {
      status = statusForError(error);
      payload = { code: error.code, message: error.message, retryable: error.isRetryable };
      if (UnsupportedCapabilityError.isInstance(error)) payload.capability = error.capability;
      if (CommandNotFoundError.isInstance(error)) payload.command_id = error.commandId;
    } else {
      status = 500;
      payload = { code: "internal", message: "internal error" };
    }
    payload.message = redactSecrets(payload.message, secrets());
    send(res, status, JSON.stringify({ error: payload }));
  }

  function entry(id: string): Entry {
    const e = sessions.get(id);
    if (e && e.expiresAt !== null && e.expiresAt <= Date.now()) {
      sessions.delete(id);
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
    const due = [...sessions].filter(([, e]) => e.expiresAt !== null && e.expiresAt <= now);
    for (const [id] of due) sessions.delete(id);
    await Promise.all(due.map(([, e]) => e.session.close().catch(() => {})));
    return due.map(([id]) => id);
  }
  // Unref'd: the reaper never keeps a process alive; close() stops it.
  const reaper = setInterval(() => void reapExpired(), options.reapIntervalMs ?? 30_000);
  reaper.unref();

  /** `GET /sessions?owner=`: that owner's sessions, for sweepers. */
  function listSessions(url: URL, res: ServerResponse): void {
    const owner = url.searchParams.get("owner");
    if (!owner) throw new HttpError(400, "invalid_request", "the 'owner' query parameter is required");
    const now = Date.now();
    const list = [...sessions]
      .filter(([, e]) => e.owner === owner)
      .map(([id, e]) => ({
        session_id: id,
        expires_at: e.expiresAt === null ? null : new Date(e.expiresAt).toISOString(),
        state: e.expiresAt !== null && e.expiresAt <= now ? "expired" : "running",
      }));
    send(res, 200, JSON.stringify({ sessions: list }));
  }

  function newId(): string {
    return `ses_${randomBytes(16).toString("hex")}`;
  }

  function workspaceRoot(s: RemoteRunnerSession): string | null {
    const meta = s.state().metadata as { workspace_root?: unknown } | null;
    return typeof meta?.workspace_root === "string" ? meta.workspace_root : null;
  }

  async function createSession(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    const text = await readJson(req);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new HttpError(400, "invalid_request", "the body is not JSON");
    }
    const parsed = CreateSessionBodySchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new HttpError(400, "invalid_request", `${i.path.join(".") || "body"}: ${i.message}`);
    }
    const body = parsed.data;
    const manifest = codecs.RunnerManifest.parse(body.manifest ?? {});
    // Modal-style mounts become manifest mounts of the backend: the secret stays a ref the backend resolves.
    for (const m of body.mounts) {
      const prefix = m.key_prefix ? `/${m.key_prefix.replace(/^\/+/, "")}` : "";
      manifest.mounts.push({
        name: `${m.kind}-${m.bucket}`,
        path: m.path,
        read_only: m.read_only,
        intent: {
          kind: m.kind,
          uri: `${m.kind === "gcs" ? "gs" : m.kind}://${m.bucket}${prefix}`,
          ...(m.secret ? { credentials: m.secret } : {}),
        },
      });
    }
    let config: unknown = body.config ?? null;
    if (config && typeof config === "object" && !Array.isArray(config)) {
      const c = config as Record<string, unknown>;
      config =
        "backend_config" in c
          ? c.backend_config
          : Object.fromEntries(Object.entries(c).filter(([k]) => !CLIENT_KEYS.has(k)));
    }
    if (!options.allowHostPaths) {
      const refused: string[] = [];
      if (manifest.entries.length > 0)
        refused.push("manifest.entries (sources are paths of the server's host)");
      if (manifest.mounts.some((m) => m.intent.kind === "provider_native"))
        refused.push("provider_native mounts (bind mounts of the server's host paths)");
      if (config && typeof config === "object" && !Array.isArray(config))
        for (const k of HOST_PATH_CONFIG_KEYS)
          if (k in (config as Record<string, unknown>)) refused.push(`config.${k}`);
      if (refused.length)
        throw new HttpError(
          403,
          "host_paths_refused",
          `this server does not let clients name its host paths: ${refused.join(", ")} (start it with allowHostPaths to permit them)`,
        );
    }
    if (options.enforceConfig)
      config = {
        ...(config && typeof config === "object" && !Array.isArray(config) ? config : {}),
        ...options.enforceConfig,
      };
    let session: RemoteRunnerSession;
    let snapshot: RunnerSnapshotRef | null = null;
    if (body.snapshot !== undefined && body.snapshot !== null) {
      const ref = codecs.RunnerSnapshotRef.parse(body.snapshot);
      const known = snapshots.get(ref.snapshot_id);
      if (!known) throw new HttpError(404, "not_found", `no snapshot '${ref.snapshot_id}' on this server`);
      session = await provider.resumeSession({ ...known.state, snapshot: known.snapshot });
      snapshot = ref;
    } else {
      const destination = {
        id: body.destination_id,
        provider_id: provider.id,
        config,
        default_manifest: manifest,
      };
      await provider.validateDestination(destination);
      session = await provider.createSession(destination);
    }
    if (closing) {
      await session.close();
      throw new HttpError(503, "shutting_down", "the server is shutting down");
    }
    // A client gone during create can never learn the id: the session would leak, so it is closed here.
    if (socket.destroyed) {
      await session.close().catch(() => {});
      return;
    }
    const id = newId();
    const ttl = body.ttl_seconds ?? options.defaultTtlSeconds;
    sessions.set(id, {
      session,
      destinationId: body.destination_id,
      owner: body.owner ?? null,
      expiresAt: ttl === undefined ? null : Date.now() + ttl * 1000,
    });
    send(res, 201, JSON.stringify({ session_id: id, snapshot, workspace_root: workspaceRoot(session) }));
  }

  /** Writes a command's NDJSON stream: chunks as they arrive, then its result (or an error line). */
  async function pipeHandle(
    res: ServerResponse,
    handle: RunnerCommandHandle,
    line: (obj: unknown) => void,
  ): Promise<void> {
    for await (const chunk of handle.output) {
      if (res.destroyed) break;
      line({ type: chunk.stream, data: Buffer.from(chunk.data).toString("base64") });
    }
    // A client that went away left the command running (it can attach again): nobody waits for it here.
    if (res.destroyed) return;
    line({ type: "result", result: JSON.parse(codecs.RunnerCommandResult.encode(await handle.wait())) });
  }

  function streamError(line: (obj: unknown) => void, error: unknown): void {
    line({
      type: "error",
      status: statusForError(error),
      error: {
        code: RunnerError.isInstance(error) ? error.code : "internal",
        message: redactSecrets((error as Error).message, secrets()),
      },
    });
  }

  async function streamCommand(req: IncomingMessage, res: ServerResponse, e: Entry): Promise<void> {
    const request = codecs.RunnerCommandRequest.decode(await readJson(req));
    const line = (obj: unknown) => {
      if (!res.destroyed) res.write(`${JSON.stringify(obj)}\n`);
    };
    // With a backend that can attach, a command outlives its client's connection (bounded by its timeout
    // and the session) so the client can attach again; otherwise a lost connection cancels it.
    const attachable =
      typeof e.session.startCommand === "function" && typeof e.session.attachCommand === "function";
    const ac = new AbortController();
    let handle: RunnerCommandHandle | undefined;
    const onClose = () => {
      if (res.writableFinished) return;
      if (attachable && handle) void handle.detach?.();
      else ac.abort();
    };
    res.on("close", onClose);
    try {
      if (e.session.startCommand) {
        handle = await e.session.startCommand(request, attachable ? {} : { signal: ac.signal });
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        line({ type: "started", command_id: request.command_id, attachable });
        if (res.destroyed) onClose();
        await pipeHandle(res, handle, line);
      } else {
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        line({ type: "started", command_id: request.command_id, attachable: false });
        const result = await e.session.runCommand(request, { signal: ac.signal });
        line({ type: "result", result: JSON.parse(codecs.RunnerCommandResult.encode(result)) });
      }
    } catch (error) {
      if (!res.headersSent) throw error;
      streamError(line, error);
    } finally {
      res.off("close", onClose);
      res.end();
    }
  }

  async function attachStream(res: ServerResponse, e: Entry, commandId: string): Promise<void> {
    if (typeof e.session.attachCommand !== "function")
      throw new UnsupportedCapabilityError({
        providerId: provider.id,
        capability: "attach_command",
        message: `the '${provider.id}' backend of this server cannot reattach commands`,
      });
    const handle = await e.session.attachCommand(commandId);
    const line = (obj: unknown) => {
      if (!res.destroyed) res.write(`${JSON.stringify(obj)}\n`);
    };
    const onClose = () => {
      if (!res.writableFinished) void handle.detach?.();
    };
    res.on("close", onClose);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    try {
      // `offset`: bytes of each stream before the replay, so a client resuming a cut stream continues exactly.
      line({ type: "attached", command_id: commandId, offset: handle.replayOffset ?? null });
      await pipeHandle(res, handle, line);
    } catch (error) {
      streamError(line, error);
    } finally {
      res.off("close", onClose);
      res.end();
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!authorized(req)) throw new HttpError(401, "unauthorized", "missing or wrong bearer token");
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
          capabilities: provider.capabilities(),
          limits: {
            max_file_bytes: maxFile,
            max_json_bytes: maxJson,
            streaming: true,
            reattach: (describeProviderLimits(provider.id)?.attach ?? "in-process") !== "none",
          },
        }),
      );
    }
    if (parts[0] !== "sessions") throw new HttpError(404, "not_found", "unknown route");
    if (parts.length === 1 && m === "POST") return createSession(req, res);
    if (parts.length === 1 && m === "GET") return listSessions(url, res);
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
            workspace_root: workspaceRoot(e.session),
          }),
        );
      }
      if (m === "DELETE") {
        const e = sessions.get(id);
        if (!e) throw new SessionNotFoundError({ providerId: provider.id, sessionId: id });
        sessions.delete(id);
        await e.session.close();
        return send(res, 204);
      }
    }
    const e = entry(id);
    const sub = parts[2];
    if (sub === "commands") {
      if (parts.length === 3 && m === "POST") {
        const request = codecs.RunnerCommandRequest.decode(await readJson(req));
        const ac = new AbortController();
        const onClose = () => {
          if (!res.writableFinished) ac.abort();
        };
        res.on("close", onClose);
        try {
          const result = await e.session.runCommand(request, { signal: ac.signal });
          return send(res, 200, codecs.RunnerCommandResult.encode(result));
        } finally {
          res.off("close", onClose);
        }
      }
      if (parts.length === 4 && parts[3] === "stream" && m === "POST") return streamCommand(req, res, e);
      if (parts.length === 5 && parts[4] === "stream" && m === "GET") return attachStream(res, e, parts[3]!);
      if (parts.length === 4 && m === "DELETE") {
        const cancelled = await e.session.cancelCommand(parts[3]!);
        return send(res, 200, JSON.stringify({ cancelled }));
      }
    }
    if (sub === "files" && parts.length === 3) {
      const filePath = url.searchParams.get("path");
      if (filePath === null)
        throw new HttpError(400, "invalid_request", "the 'path' query parameter is required");
      if (m === "GET") {
        const result = await e.session.readFile({ path: filePath });
        return send(res, 200, result.contents, "application/octet-stream");
      }
      if (m === "PUT") {
        const body = await readBody(req, maxFile);
        await e.session.writeFile({
          path: filePath,
          contents: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
        });
        return send(res, 204);
      }
    }
    if (parts.length === 3 && m === "POST") {
      if (sub === "ports") {
        const request = codecs.RunnerPortRequest.decode(await readJson(req));
        return send(res, 200, codecs.RunnerPortResult.encode(await e.session.exposePort(request)));
      }
      if (sub === "artifacts") {
        const request = codecs.RunnerArtifactExportRequest.decode(await readJson(req));
        return send(
          res,
          200,
          codecs.RunnerArtifactExportResult.encode(await e.session.exportArtifact(request)),
        );
      }
      if (sub === "snapshots") {
        await readBody(req, maxJson);
        const snap = await e.session.snapshot();
        if (snap) snapshots.set(snap.snapshot_id, { state: e.session.state(), snapshot: snap });
        const wire = snap ? { ...snap, provider_id: provider.id } : null;
        return send(res, 200, `{"snapshot":${wire ? codecs.RunnerSnapshotRef.encode(wire) : "null"}}`);
      }
    }
    throw new HttpError(404, "not_found", `no route ${m} ${path}`);
  }

  const handler = (req: IncomingMessage, res: ServerResponse) => {
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
      sendError(res, error);
    });
  };

  return {
    handler,
    sessionCount: () => sessions.size,
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server = createServer(
          { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 5_000 },
          handler,
        );
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
