import { randomBytes } from "node:crypto";
import {
  codecs,
  type RemoteRunnerSession,
  type RunnerExportProgress,
  type RunnerSnapshotRef,
} from "@roder/runner-contract";
import { z } from "zod";
import { frame } from "./http-frames.js";
import type { Entry, IncomingMessage, ServerContext, ServerResponse } from "./http-server-context.js";
import { errorAnswer, lineWriter, readBody, send } from "./http-server-io.js";
import {
  applyEnforced,
  checkClientConfig,
  extractBackendConfig,
  HttpError,
  jsonDepth,
  MAX_JSON_DEPTH,
  strictRefusal,
  unrecognizedKeys,
  withoutKeys,
} from "./http-server-policy.js";
import { CommandInputs } from "./http-server-stdin.js";

/** `POST /sessions` and `GET /sessions?owner=`: creating (or restoring) sessions and listing them. */

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

/** The session routes of one server. */
export function sessionRoutes(ctx: ServerContext) {
  const { provider, options, sessions, snapshots, expired, idleMs, enforced } = ctx;

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
    return provider.limits().file_scope === "sandbox" ? "sandbox" : "workspace";
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
    const text = await ctx.readJson(req);
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
    if (ctx.isClosing()) {
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

  /**
   * `POST /sessions/{id}/artifacts`. A client that goes away cancels the export (nothing half-written stays).
   * With `Accept: application/x-ndjson` the answer is a stream: `progress` frames (at most ten a second, and
   * every phase change), then the `result` or an `error` frame.
   */
  async function exportArtifact(req: IncomingMessage, res: ServerResponse, e: Entry): Promise<void> {
    const request = codecs.RunnerArtifactExportRequest.decode(await ctx.readJson(req));
    const gone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    if (!/\bapplication\/x-ndjson\b/.test(String(req.headers.accept ?? ""))) {
      const result = await e.session.exportArtifact(request, { signal: gone.signal });
      send(res, 200, codecs.RunnerArtifactExportResult.encode(result));
      return;
    }
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    const line = lineWriter(res);
    let lastAt = 0;
    let lastPhase = "";
    const onProgress = (p: RunnerExportProgress) => {
      const now = Date.now();
      if (p.phase === lastPhase && now - lastAt < 100) return;
      lastAt = now;
      lastPhase = p.phase;
      void line(
        frame({
          type: "progress",
          phase: p.phase,
          bytes: p.bytes,
          ...(p.total !== undefined ? { total: p.total } : {}),
        }),
      );
    };
    try {
      const result = await e.session.exportArtifact(request, { signal: gone.signal, onProgress });
      await line(
        frame({ type: "result", result: JSON.parse(codecs.RunnerArtifactExportResult.encode(result)) }),
      );
    } catch (error) {
      const { status, payload } = errorAnswer(error, ctx.secrets(), e.hostPaths);
      await line(frame({ type: "error", status, error: payload }));
    } finally {
      res.end();
    }
  }

  /**
   * `POST /sessions/{id}/snapshots`: the client gets an opaque id under its own provider id; the backend's ref
   * (archive paths, its session id) stays here and is looked up again when the client restores.
   */
  async function snapshot(req: IncomingMessage, res: ServerResponse, e: Entry): Promise<void> {
    await readBody(req, ctx.maxJson);
    const snap = await e.session.snapshot();
    let wire: RunnerSnapshotRef | null = null;
    if (snap) {
      const snapshotId = `snp_${randomBytes(16).toString("hex")}`;
      snapshots.set(snapshotId, { state: e.session.state(), snapshot: snap });
      if (snapshots.size > (options.maxSnapshots ?? 1000))
        snapshots.delete(snapshots.keys().next().value as string);
      wire = { provider_id: e.clientProviderId, snapshot_id: snapshotId, metadata: null };
    }
    send(res, 200, `{"snapshot":${wire ? codecs.RunnerSnapshotRef.encode(wire) : "null"}}`);
  }

  return { createSession, listSessions, workspaceRoot, fileScope, exportArtifact, snapshot };
}
