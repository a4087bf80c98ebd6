import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
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
import { getFile, putFile } from "./http-server-files.js";
import {
  applyEnforced,
  checkClientConfig,
  DEFAULT_MAX_OUTPUT_LIMIT_BYTES,
  extractBackendConfig,
  HttpError,
  jsonDepth,
  MAX_JSON_DEPTH,
  type RunnerServerPolicy,
  strictRefusal,
  unrecognizedKeys,
  withoutKeys,
} from "./http-server-policy.js";
import { proxyToPort } from "./http-server-ports.js";
import { scrubHostPaths } from "./http-server-scrub.js";
import { CommandInputs, interactiveOptions, terminalSize } from "./http-server-stdin.js";

export { HOST_PATH_CONFIG_KEYS, type RunnerServerPolicy } from "./http-server-policy.js";

export interface RunnerServerOptions extends RunnerServerPolicy {
  /** The backend every session runs on (e.g. the local provider). */
  provider: RemoteRunnerProvider;
  /** Bearer token; default: the value of `tokenEnv` in `env`. */
  token?: string;
  tokenEnv?: string;
  env?: EnvSource;
  /**
   * Largest file body accepted by `PUT /files` (default 64 GiB). Files stream through the server with bounded
   * memory when the backend has `readFileStream`/`writeFileStream` (the local runner does).
   */
  maxFileBytes?: number;
  /** Largest file moved through a backend without streamed files, held in memory whole (default 512 MiB). */
  maxBufferedFileBytes?: number;
  /** Largest JSON body (default 8 MiB). */
  maxJsonBytes?: number;
  /** Path prefix, e.g. `/v1` (default none). */
  basePath?: string;
  /** Called once per request, for logs; never receives bodies or headers. */
  onRequest?: (entry: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Backend config keys the server sets itself, over what clients send (e.g. `{ workspace_path: "/w" }`).
   * Pinned keys a client sent with another value are listed in the create answer (`pinned_config_keys`).
   */
  enforceConfig?: Record<string, unknown>;
  /**
   * Idle lifetime of a session created without `ttl_seconds` (the Rust client sends none): it is closed this
   * many seconds after its last request ended, never while a request (a command, a stream) is in flight.
   * Default 3600; `0` = no expiry.
   */
  defaultTtlSeconds?: number;
  /**
   * The config keys the backend knows. Others (vendor keys such as `template`, `region`) are ignored and
   * listed in the create answer (`ignored_config_keys`), or refused with `strictConfig`. Default: learnt from
   * the backend's own `invalid_destination_config` answer (its unrecognized keys).
   */
  backendConfigKeys?: readonly string[];
  /**
   * The base URL clients reach this server by (e.g. `https://runners.example.com/v1` behind a reverse proxy);
   * port previews are handed out under it. Default: from the request's `Host` header and `basePath`.
   */
  publicUrl?: string;
  /**
   * Hand out port previews as `/sessions/{id}/ports/{port}/` (bearer credential needed) instead of the default
   * `/previews/{preview_id}/` (an unguessable URL a browser can open, valid while the session lives).
   */
  authenticatedPreviews?: boolean;
  /** Live sessions at most (default 1000); a create past it is a 429 `too_many_sessions`. */
  maxSessions?: number;
  /**
   * Snapshot refs kept for restore (default 1000; the oldest is forgotten past it). `DELETE
   * /snapshots/{id}` forgets one. The backend's own archive is the backend's to delete.
   */
  maxSnapshots?: number;
  /**
   * Open connections at most (default 1024, keep it under the process's descriptor limit). At the cap a new
   * connection evicts the oldest one with no request in flight (unfinished headers, idle keep-alive).
   */
  maxConnections?: number;
  /**
   * A request's headers must arrive within this (default 30 s; then 408 and the socket is closed). At the
   * connection cap idle and half-open connections are evicted first, so this only bounds how long a
   * half-open connection holds a slot below the cap.
   */
  headersTimeoutMs?: number;
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
  // Answered, then destroyed: a broken or slow connection never lingers (and never holds a descriptor).
  // (`end(data, cb)` on a socket the parser gave up on never finishes here: write, then destroy.)
  socket.write(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

interface Entry {
  session: RemoteRunnerSession;
  destinationId: string;
  /** The provider id the client asked for (what its snapshot refs carry). */
  clientProviderId: string;
  owner: string | null;
  /** Epoch ms after which the session is closed; null: never (or idle-based, see `idleMs`). */
  expiresAt: number | null;
  /** Idle lifetime (ms) for sessions created without a TTL; `expiresAt` moves with each request. */
  idleMs: number | null;
  /** Requests in flight (an idle session is never reaped while one runs). */
  active: number;
  /** Host path → what the client sees, for error messages. */
  hostPaths: Array<[string, string]>;
  /** Port → preview id. */
  previews: Map<number, string>;
  /** Running commands' stdin (writes with offsets). */
  inputs: CommandInputs;
}

/** Node's timers hold at most 2^31−1 ms; a longer timeout would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function commandRequest(text: string) {
  const request = codecs.RunnerCommandRequest.decode(text);
  if (request.timeout_ms !== undefined && request.timeout_ms !== null && request.timeout_ms > MAX_TIMER_MS)
    throw new HttpError(
      400,
      "invalid_request",
      `timeout_ms: at most ${MAX_TIMER_MS} (about 24.8 days), got ${request.timeout_ms}`,
    );
  return request;
}

type Line = (obj: unknown) => Promise<void>;

/** One NDJSON line per call; resolves once the socket took it (or the client is gone). */
function lineWriter(res: ServerResponse): Line {
  return (obj) => {
    if (res.destroyed) return Promise.resolve();
    if (res.write(`${JSON.stringify(obj)}\n`)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    });
  };
}

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

  function sendError(res: ServerResponse, error: unknown, e?: Entry): void {
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
    payload.message = scrubHostPaths(redactSecrets(payload.message, secrets()), e?.hostPaths ?? []);
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
        state: expired(e, now) ? "expired" : "running",
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

  /**
   * What the session's file API addresses: the backend session's own word (`metadata.file_scope`), else its
   * provider's limits; `workspace` when neither says (the client then confines to the workspace too).
   */
  function fileScope(s: RemoteRunnerSession): "sandbox" | "workspace" {
    const meta = s.state().metadata as { file_scope?: unknown } | null;
    if (meta?.file_scope === "sandbox" || meta?.file_scope === "workspace") return meta.file_scope;
    return describeProviderLimits(provider.id)?.file_scope === "sandbox" ? "sandbox" : "workspace";
  }

  /** Host paths and backend ids of a session, each with what the client may see instead. */
  function hostPathsOf(s: RemoteRunnerSession, id: string): Array<[string, string]> {
    const st = s.state();
    const meta = (st.metadata ?? {}) as { workspace_root?: unknown; host_root?: unknown };
    const shown = typeof meta.workspace_root === "string" ? meta.workspace_root : "<workspace>";
    const pairs: Array<[string, string]> = [];
    if (typeof meta.host_root === "string" && meta.host_root !== shown) pairs.push([meta.host_root, shown]);
    if (st.session_id && st.session_id !== id) pairs.push([st.session_id, id]);
    return pairs;
  }

  /** The backend config a client may have: policy checked, operator keys pinned, unknown keys dropped. */
  async function backendDestination(
    body: z.infer<typeof CreateSessionBodySchema>,
    manifest: ReturnType<typeof codecs.RunnerManifest.parse>,
  ) {
    const { config: clientConfig, ignored } = extractBackendConfig(body.config);
    checkClientConfig(
      options,
      clientConfig,
      manifest,
      body.mounts.flatMap((m) => (m.endpoint ? [m.endpoint] : [])),
    );
    const unknown = (c: unknown): string[] =>
      options.backendConfigKeys && c && typeof c === "object" && !Array.isArray(c)
        ? Object.keys(c).filter((k) => !options.backendConfigKeys!.includes(k))
        : [];
    let config: unknown = clientConfig;
    const drop = (keys: string[]) => {
      if (keys.length === 0) return;
      if (options.strictConfig) throw strictRefusal(keys);
      ignored.push(...keys);
      config = withoutKeys(config, keys);
    };
    drop(unknown(config).filter((k) => !(k in enforced)));
    let pinned: string[] = [];
    if (Object.keys(enforced).length) ({ config, pinned } = applyEnforced(config, enforced));
    const destination = () => ({
      id: body.destination_id,
      provider_id: provider.id,
      config,
      default_manifest: manifest,
    });
    try {
      await provider.validateDestination(destination());
    } catch (error) {
      // Vendor keys (`template`, `region`, …) the backend does not know: ignored (listed), then validated again.
      const keys = unrecognizedKeys(error, config).filter((k) => !(k in enforced));
      if (keys.length === 0) throw error;
      drop(keys);
      await provider.validateDestination(destination());
    }
    return { destination: destination(), ignored, pinned };
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
    if (jsonDepth(raw) > MAX_JSON_DEPTH)
      throw new HttpError(400, "invalid_request", `the body is nested deeper than ${MAX_JSON_DEPTH} levels`);
    const parsed = CreateSessionBodySchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new HttpError(400, "invalid_request", `${i.path.join(".") || "body"}: ${i.message}`);
    }
    const body = parsed.data;
    if (sessions.size >= (options.maxSessions ?? 1000))
      throw new HttpError(
        429,
        "too_many_sessions",
        `this server holds its maximum of ${options.maxSessions ?? 1000} sessions: close one, or retry later`,
      );
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
    let session: RemoteRunnerSession;
    let snapshot: RunnerSnapshotRef | null = null;
    let ignored: string[] = [];
    let pinned: string[] = [];
    if (body.snapshot !== undefined && body.snapshot !== null) {
      const ref = codecs.RunnerSnapshotRef.parse(body.snapshot);
      const known = snapshots.get(ref.snapshot_id);
      if (!known) throw new HttpError(404, "not_found", `no snapshot '${ref.snapshot_id}' on this server`);
      session = await provider.resumeSession({ ...known.state, snapshot: known.snapshot });
      snapshot = ref;
    } else {
      const d = await backendDestination(body, manifest);
      ({ ignored, pinned } = d);
      session = await provider.createSession(d.destination);
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
    const ttlMs = body.ttl_seconds !== undefined ? body.ttl_seconds * 1000 : null;
    sessions.set(id, {
      session,
      destinationId: body.destination_id,
      clientProviderId: body.provider_id ?? "http",
      owner: body.owner ?? null,
      expiresAt: ttlMs !== null ? Date.now() + ttlMs : idleMs > 0 ? Date.now() + idleMs : null,
      idleMs: ttlMs === null && idleMs > 0 ? idleMs : null,
      active: 0,
      hostPaths: hostPathsOf(session, id),
      previews: new Map(),
      inputs: new CommandInputs(),
    });
    send(
      res,
      201,
      JSON.stringify({
        session_id: id,
        snapshot,
        workspace_root: workspaceRoot(session),
        file_scope: fileScope(session),
        ...(ignored.length ? { ignored_config_keys: ignored } : {}),
        ...(pinned.length ? { pinned_config_keys: pinned } : {}),
      }),
    );
  }

  /** Writes a command's NDJSON stream: chunks as they arrive, then its result (or an error line). */
  async function pipeHandle(res: ServerResponse, handle: RunnerCommandHandle, line: Line): Promise<void> {
    for await (const chunk of handle.output) {
      if (res.destroyed) break;
      // Backpressure: the next chunk is read only once the client took this one (a client that does not
      // read holds the server's buffer at one chunk, not at the command's whole output).
      await line({ type: chunk.stream, data: Buffer.from(chunk.data).toString("base64") });
    }
    // A client that went away left the command running (it can attach again): nobody waits for it here.
    if (res.destroyed) return;
    await line({
      type: "result",
      result: JSON.parse(codecs.RunnerCommandResult.encode(await handle.wait())),
    });
  }

  function streamError(line: Line, error: unknown, e: Entry): Promise<void> {
    return line({
      type: "error",
      status: statusForError(error),
      error: {
        code: RunnerError.isInstance(error) ? error.code : "internal",
        message: scrubHostPaths(redactSecrets((error as Error).message, secrets()), e.hostPaths),
      },
    });
  }

  async function streamCommand(req: IncomingMessage, res: ServerResponse, e: Entry): Promise<void> {
    const text = await readJson(req);
    const request = commandRequest(text);
    const io = interactiveOptions(text);
    const interactive = io.stdin === true || io.pty !== undefined;
    const line = lineWriter(res);
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
        handle = await e.session.startCommand({ ...request, ...io }, attachable ? {} : { signal: ac.signal });
        if (interactive) e.inputs.register(handle);
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        await line({
          type: "started",
          command_id: request.command_id,
          attachable,
          ...(interactive ? { stdin_offset: 0 } : {}),
        });
        if (res.destroyed) onClose();
        await pipeHandle(res, handle, line);
      } else {
        if (interactive)
          throw new UnsupportedCapabilityError({
            providerId: provider.id,
            capability: io.pty ? "pty" : "stdin",
            message: `the '${provider.id}' backend of this server cannot stream commands, nor write to their stdin`,
          });
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        await line({ type: "started", command_id: request.command_id, attachable: false });
        const result = await e.session.runCommand(request, { signal: ac.signal });
        await line({ type: "result", result: JSON.parse(codecs.RunnerCommandResult.encode(result)) });
      }
    } catch (error) {
      if (!res.headersSent) throw error;
      await streamError(line, error, e);
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
    e.inputs.register(handle);
    const line = lineWriter(res);
    const onClose = () => {
      if (!res.writableFinished) void handle.detach?.();
    };
    res.on("close", onClose);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    try {
      // `offset`: bytes of each stream before the replay, so a client resuming a cut stream continues exactly.
      await line({
        type: "attached",
        command_id: commandId,
        offset: handle.replayOffset ?? null,
        // Where a client that writes to the command's stdin continues (bytes it has taken so far).
        stdin_offset: e.inputs.offset(commandId),
      });
      await pipeHandle(res, handle, line);
    } catch (error) {
      await streamError(line, error, e);
    } finally {
      res.off("close", onClose);
      res.end();
    }
  }

  /**
   * `/previews/{preview_id}/…`: a port preview, reachable without the bearer credential (a browser can open
   * it) by whoever holds its URL; the id is 128 random bits, valid while the session lives.
   */
  async function previewRoute(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const target = req.url ?? "";
    const prefix = `${base}/previews/`;
    if (!target.startsWith(prefix)) return false;
    const rest = target.slice(prefix.length);
    const slash = rest.search(/[/?]/);
    const pv = previews.get(slash < 0 ? rest : rest.slice(0, slash));
    const e = pv ? sessions.get(pv.sessionId) : undefined;
    if (!pv || !e || expired(e))
      throw new HttpError(404, "not_found", "no such preview (its session is closed?)");
    const tail = slash < 0 ? "/" : rest.slice(slash);
    e.active++;
    try {
      await proxyToPort({
        req,
        res,
        target: async () => (await e.session.exposePort({ port: pv.port, label: null })).url,
        path: tail.startsWith("/") ? tail : `/${tail}`,
        secrets: secrets(),
      });
    } finally {
      e.active--;
      if (e.idleMs !== null) e.expiresAt = Date.now() + e.idleMs;
    }
    return true;
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!closing && (await previewRoute(req, res))) return;
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
            reattach: (describeProviderLimits(provider.id)?.attach ?? "in-process") !== "none",
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
            file_scope: fileScope(e.session),
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
      return await sessionRoute(req, res, url, parts, e, id);
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

  async function sessionRoute(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    parts: string[],
    e: Entry,
    id: string,
  ): Promise<void> {
    const m = req.method ?? "GET";
    const path = url.pathname.slice(base.length);
    const sub = parts[2];
    if (sub === "ports" && parts.length >= 4) {
      const port = Number(parts[3]);
      if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^\d+$/.test(parts[3]!))
        throw new HttpError(400, "invalid_request", `port must be 1..65535, got '${parts[3]}'`);
      // The raw path after /ports/{port} (not decoded: the app gets what the client sent).
      const raw = url.pathname.slice(base.length).split("/").slice(5).join("/");
      return proxyToPort({
        req,
        res,
        target: async () => (await e.session.exposePort({ port, label: null })).url,
        path: `/${raw}${url.search}`,
        secrets: secrets(),
      });
    }
    if (sub === "commands") {
      if (parts.length === 3 && m === "POST") {
        const request = commandRequest(await readJson(req));
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
      if (parts.length === 5 && parts[4] === "stdin" && m === "POST") {
        const raw = url.searchParams.get("offset") ?? "";
        const offset = Number(raw);
        if (!/^\d+$/.test(raw) || !Number.isSafeInteger(offset))
          throw new HttpError(400, "invalid_request", "the 'offset' query parameter (bytes) is required");
        const body = await readBody(req, maxJson);
        const after = await e.inputs.write(parts[3]!, offset, body);
        return send(res, 200, JSON.stringify({ offset: after }));
      }
      if (parts.length === 6 && parts[4] === "stdin" && parts[5] === "close" && m === "POST") {
        await readBody(req, maxJson);
        await e.inputs.close(parts[3]!);
        return send(res, 204);
      }
      if (parts.length === 5 && parts[4] === "resize" && m === "POST") {
        let size: { cols: number; rows: number };
        try {
          const { cols, rows } = JSON.parse(await readJson(req)) as { cols?: unknown; rows?: unknown };
          size = terminalSize(cols, rows);
        } catch (error) {
          if (error instanceof HttpError) throw error;
          throw new HttpError(400, "invalid_request", "the body must be JSON: { cols, rows }");
        }
        await e.inputs.resize(parts[3]!, size.cols, size.rows);
        return send(res, 204);
      }
      if (parts.length === 4 && m === "DELETE") {
        const cancelled = await e.session.cancelCommand(parts[3]!);
        return send(res, 200, JSON.stringify({ cancelled }));
      }
    }
    if (sub === "files" && parts.length === 3) {
      const filePath = url.searchParams.get("path");
      if (filePath === null)
        throw new HttpError(400, "invalid_request", "the 'path' query parameter is required");
      if (m === "GET" || m === "PUT") {
        // A client that goes away ends the read, or aborts the write (the old file stays).
        const ac = new AbortController();
        const onClose = () => {
          if (!res.writableFinished) ac.abort();
        };
        res.on("close", onClose);
        try {
          if (m === "GET") return await getFile(req, res, e.session, filePath, ac.signal);
          await putFile(req, e.session, filePath, { maxFile, bufferedLimit: maxBufferedFile }, ac.signal);
          return send(res, 204);
        } finally {
          res.off("close", onClose);
        }
      }
    }
    if (parts.length === 3 && m === "POST") {
      if (sub === "ports") {
        // The backend's URL (e.g. its loopback) is for the server only: the client gets this server's route
        // that proxies to it, under the URL it reaches the server by.
        const request = codecs.RunnerPortRequest.decode(await readJson(req));
        await e.session.exposePort(request);
        let url: string;
        if (options.authenticatedPreviews) url = `${publicBase(req)}/sessions/${id}/ports/${request.port}/`;
        else {
          let pv = e.previews.get(request.port);
          if (!pv) {
            pv = `pv_${randomBytes(16).toString("hex")}`;
            e.previews.set(request.port, pv);
            previews.set(pv, { sessionId: id, port: request.port });
          }
          url = `${publicBase(req)}/previews/${pv}/`;
        }
        return send(res, 200, codecs.RunnerPortResult.encode({ port: request.port, url }));
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
        // The client gets an opaque id under its own provider id; the backend's ref (archive paths, its
        // session id) stays here and is looked up again when the client restores.
        let wire: RunnerSnapshotRef | null = null;
        if (snap) {
          const snapshotId = `snp_${randomBytes(16).toString("hex")}`;
          snapshots.set(snapshotId, { state: e.session.state(), snapshot: snap });
          if (snapshots.size > (options.maxSnapshots ?? 1000))
            snapshots.delete(snapshots.keys().next().value as string);
          wire = { provider_id: e.clientProviderId, snapshot_id: snapshotId, metadata: null };
        }
        return send(res, 200, `{"snapshot":${wire ? codecs.RunnerSnapshotRef.encode(wire) : "null"}}`);
      }
    }
    throw new HttpError(404, "not_found", `no route ${m} ${path}`);
  }

  /**
   * Open connections, oldest first, with their requests in flight. At the cap, a new connection evicts the
   * oldest one that has no request in flight (headers never finished, or idle keep-alive) rather than being
   * refused: connections that never finish their headers cannot lock out clients that do.
   */
  const open = new Map<Socket, { busy: number }>();
  const maxConnections = options.maxConnections ?? 1024;
  const onConnection = (socket: Socket) => {
    if (open.size >= maxConnections) {
      for (const [s, st] of open)
        if (st.busy === 0) {
          open.delete(s);
          s.destroy();
          break;
        }
      if (open.size >= maxConnections) {
        socket.destroy();
        return;
      }
    }
    open.set(socket, { busy: 0 });
    socket.on("close", () => open.delete(socket));
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const conn = open.get(req.socket as Socket);
    if (conn) {
      conn.busy++;
      res.on("close", () => conn.busy--);
    }
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
