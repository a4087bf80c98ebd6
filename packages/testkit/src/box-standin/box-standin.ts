import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";
import { type HttpsInterceptProxy, startHttpsInterceptProxy } from "../https-intercept/intercept-proxy.js";
import {
  errorBody,
  type FormPart,
  jsonBody,
  parseMultipart,
  readBody,
  sendError,
  sendJson,
} from "./box-http.js";
import {
  BoxApiError,
  type BoxFile,
  type BoxItem,
  BoxStore,
  boxTime,
  checkName,
  OWNER,
  ROOT_FOLDER_ID,
  sha1Hex,
} from "./box-store.js";

/** Box's documented per-user limits (developer.box.com/guides/api-calls/permissions-and-errors/rate-limits). */
export interface BoxRateLimit {
  /** General API calls per minute per user (Box: 1000). */
  perMinute: number;
  /** Upload requests (upload.box.com) per minute per user (Box: 240). */
  uploadsPerMinute: number;
}

export interface BoxStandInOptions {
  /** Box's per-user rate limits, on by default; `false` switches them off. */
  rateLimit?: Partial<BoxRateLimit> | false;
  /** Part size the stand-in hands out for chunked upload sessions (Box: 8 MiB for files of this size). */
  uploadPartSize?: number;
  /** Lifetime of an access token (Box: 3600 s). */
  accessTokenSeconds?: number;
}

export interface BoxRequestRecord {
  host: string;
  method: string;
  path: string;
  status: number;
}

/**
 * A stand-in of the part of Box's API that rclone's Box backend (v1.60) calls, served as `api.box.com`,
 * `upload.box.com` and `dl.boxcloud.com` behind an intercepting HTTPS proxy on 127.0.0.1 (`HTTPS_PROXY` =
 * `proxyUrl`, trust `caCertFile`): folder items with marker and offset paging and `fields`, file and folder
 * info, `/users/me`, folder create/rename/move/delete (`recursive`), file rename/move/copy/delete and
 * `content_modified_at` updates, the pre-upload check (`OPTIONS /files/content`), uploads (multipart
 * `attributes` + file, new files and new versions), chunked upload sessions (create, parts with `Digest` and
 * `Content-Range` checks, list parts, commit with the whole-file SHA-1, abort), downloads as a 302 to a
 * `dl.boxcloud.com` URL that honours `Range`, and OAuth 2 refresh at `https://api.box.com/oauth2/token`
 * (single-use refresh tokens, expired access tokens answered 401 `expired_token`). Errors are Box's client
 * error bodies; the per-user rate limits answer 429 `rate_limit_exceeded` with `Retry-After`.
 */
export interface BoxStandIn {
  /** `HTTPS_PROXY` for the client (rclone). */
  proxyUrl: string;
  /** The CA that signed the stand-in's certificates (rclone `--ca-cert` / `RCLONE_CA_CERT`). */
  caCertFile: string;
  caCertPem: string;
  /** Box's token endpoint (rclone `token_url`), served by the stand-in through the proxy. */
  tokenUrl: string;
  /** A client id / secret pair the token endpoint accepts (any non-empty pair is accepted). */
  clientId: string;
  clientSecret: string;
  /** A valid access token (also usable as rclone's `access_token`). */
  accessToken: string;
  /**
   * rclone's token JSON (`{access_token, token_type, refresh_token, expiry}`) with a fresh pair; `expired`
   * makes the access token already expired, so the client must refresh before its first call.
   */
  tokenJson(opts?: { expired?: boolean }): string;
  /** How many refresh-token grants were honoured. */
  readonly refreshes: number;
  store: BoxStore;
  /** Creates folders along `path` under `from` (default the root `0`); returns the folder id. */
  mkdir(path: string, from?: string): string;
  /** Puts a file (test setup), creating folders; returns its id. */
  putFile(path: string, data: Buffer | string, from?: string): string;
  /** A file's bytes (active files only), or undefined. */
  readFile(path: string, from?: string): Buffer | undefined;
  /** Names in a folder (active items). */
  list(path: string, from?: string): string[];
  /** Ids of chunked upload sessions neither committed nor aborted. */
  pendingUploadSessions(): string[];
  requests: BoxRequestRecord[];
  proxy: HttpsInterceptProxy;
  faults: FaultSwitch;
  stop(): Promise<void>;
}

const MIN_CHUNKED_SIZE = 20_000_000;
const MAX_BODY = 512 * 1024 * 1024;

interface UploadSession {
  id: string;
  fileSize: number;
  partSize: number;
  totalParts: number;
  folderId?: string;
  fileName?: string;
  fileId?: string;
  expiresAt: number;
  parts: Map<number, { part_id: string; offset: number; size: number; sha1: string; data: Buffer }>;
}

export async function startBoxStandIn(opts: BoxStandInOptions = {}): Promise<BoxStandIn> {
  const store = new BoxStore();
  const limits: BoxRateLimit | null =
    opts.rateLimit === false ? null : { perMinute: 1000, uploadsPerMinute: 240, ...(opts.rateLimit ?? {}) };
  const partSize = opts.uploadPartSize ?? 8 * 1024 * 1024;
  const tokenSeconds = opts.accessTokenSeconds ?? 3600;
  const clientId = `roder-box-client-${randomBytes(4).toString("hex")}`;
  const clientSecret = randomBytes(16).toString("hex");
  const accessTokens = new Map<string, number>(); // token → expiry (ms)
  const refreshTokens = new Set<string>();
  const issue = (expired = false) => {
    const access = randomBytes(24).toString("base64url");
    const refresh = randomBytes(32).toString("base64url");
    const exp = expired ? Date.now() - 60_000 : Date.now() + tokenSeconds * 1000;
    accessTokens.set(access, exp);
    refreshTokens.add(refresh);
    return { access, refresh, exp };
  };
  const first = issue();
  let refreshes = 0;
  const windows = new Map<string, number[]>(); // `${token}:${kind}` → request times in the last minute
  const downloads = new Map<string, { data: Buffer; expires: number }>();
  const sessions = new Map<string, UploadSession>();
  const requests: BoxRequestRecord[] = [];
  const faults = createFaultSwitch((status) =>
    errorBody(
      status,
      status === 429 ? "rate_limit_exceeded" : "internal_server_error",
      status === 429 ? "Request rate limit exceeded, please try again later" : "Internal Server Error",
    ),
  );

  const authenticate = (req: IncomingMessage): string => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const exp = m ? accessTokens.get(m[1]!) : undefined;
    if (exp === undefined)
      throw new BoxApiError(401, "unauthorized", "Unauthorized", undefined, {
        "www-authenticate":
          'Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid."',
      });
    if (exp <= Date.now())
      throw new BoxApiError(401, "unauthorized", "Unauthorized", undefined, {
        "www-authenticate":
          'Bearer realm="Service", error="expired_token", error_description="The access token provided has expired."',
      });
    return m![1]!;
  };

  const rateLimit = (token: string, upload: boolean) => {
    if (!limits) return;
    const max = upload ? limits.uploadsPerMinute : limits.perMinute;
    const key = `${token}:${upload ? "upload" : "api"}`;
    const now = Date.now();
    const w = (windows.get(key) ?? []).filter((t) => t > now - 60_000);
    windows.set(key, w);
    if (w.length >= max) {
      const retry = Math.max(1, Math.ceil((w[0]! + 60_000 - now) / 1000));
      throw new BoxApiError(
        429,
        "rate_limit_exceeded",
        "Request rate limit exceeded, please try again later",
        undefined,
        {
          "retry-after": String(retry),
        },
      );
    }
    w.push(now);
  };

  const fieldsOf = (url: URL) =>
    url.searchParams
      .get("fields")
      ?.split(",")
      .map((f) => f.trim())
      .filter(Boolean);
  const parentIdOf = (body: Record<string, unknown>): string | undefined => {
    const p = body.parent as { id?: unknown } | undefined;
    return p && typeof p.id === "string" ? p.id : undefined;
  };
  const time = (v: unknown): string | undefined => {
    if (typeof v !== "string") return undefined;
    const t = Date.parse(v);
    if (Number.isNaN(t)) throw new BoxApiError(400, "bad_request", `Invalid date ${v}`);
    return boxTime(t);
  };

  const folderItems = (res: ServerResponse, url: URL, folderId: string) => {
    store.folder(folderId);
    const all = store.children(folderId);
    const fields = fieldsOf(url);
    const limitParam = Number(url.searchParams.get("limit") ?? 100);
    if (!Number.isInteger(limitParam) || limitParam < 0)
      throw new BoxApiError(400, "bad_request", "Invalid value for limit");
    const limit = Math.min(limitParam, 1000);
    if (url.searchParams.get("usemarker") === "true") {
      const marker = url.searchParams.get("marker");
      let start = 0;
      if (marker) {
        const n = Number(Buffer.from(marker, "base64url").toString("utf8").replace(/^m:/, ""));
        if (!Number.isInteger(n) || n < 0) throw new BoxApiError(400, "invalid_parameter", "Invalid marker");
        start = n;
      }
      const page = all.slice(start, start + limit);
      const next =
        start + limit < all.length ? Buffer.from(`m:${start + limit}`).toString("base64url") : null;
      return sendJson(res, 200, {
        entries: page.map((it) => store.json(it, fields)),
        limit,
        next_marker: next,
      });
    }
    const offset = Number(url.searchParams.get("offset") ?? 0);
    if (!Number.isInteger(offset) || offset < 0)
      throw new BoxApiError(400, "bad_request", "Invalid value for offset");
    return sendJson(res, 200, {
      total_count: all.length,
      entries: all.slice(offset, offset + limit).map((it) => store.json(it, fields)),
      offset,
      limit,
      order: [
        { by: "type", direction: "ASC" },
        { by: "name", direction: "ASC" },
      ],
    });
  };

  /** `PUT /files/{id}` and `PUT /folders/{id}`: rename, move, `content_modified_at`. */
  const update = (res: ServerResponse, url: URL, it: BoxItem, body: Record<string, unknown>) => {
    if (it.id === ROOT_FOLDER_ID)
      throw new BoxApiError(403, "access_denied_insufficient_permissions", "Access denied");
    const name = body.name === undefined ? it.name : checkName(body.name);
    const parentId = parentIdOf(body) ?? it.parentId!;
    if (name !== it.name || parentId !== it.parentId) {
      store.folder(parentId);
      if (it.type === "folder") {
        for (let p: string | null = parentId; p !== null; p = store.get(p)?.parentId ?? null)
          if (p === it.id) throw new BoxApiError(400, "bad_request", "Cannot move a folder into itself");
      }
      store.checkFree(parentId, name, it.id, it.type === "folder");
      store.touch(it.parentId);
      it.name = name;
      it.parentId = parentId;
      store.touch(parentId);
    }
    if (it.type === "file") {
      const m = time(body.content_modified_at);
      if (m) it.contentModifiedAt = m;
    }
    it.sequence += 1;
    if (it.type === "file") it.modifiedAt = boxTime();
    return sendJson(res, 200, store.json(it, fieldsOf(url)));
  };

  const uploadForm = (req: IncomingMessage, body: Buffer) => {
    const parts = parseMultipart(req.headers["content-type"], body);
    const attrsPart = parts.find((p) => p.name === "attributes");
    const file = parts.find((p: FormPart) => p.filename !== undefined);
    if (!attrsPart) throw new BoxApiError(400, "bad_request", "Missing attributes");
    if (!file) throw new BoxApiError(400, "bad_request", "Missing file");
    if (parts.indexOf(attrsPart) > parts.indexOf(file))
      throw new BoxApiError(400, "bad_request", "The attributes part must come before the file part");
    return { attrs: jsonBody(attrsPart.data), data: Buffer.from(file.data) };
  };

  const sessionJson = (s: UploadSession) => {
    const base = `https://upload.box.com/api/2.0/files/upload_sessions/${s.id}`;
    return {
      id: s.id,
      type: "upload_session",
      session_expires_at: boxTime(s.expiresAt),
      part_size: s.partSize,
      total_parts: s.totalParts,
      num_parts_processed: s.parts.size,
      session_endpoints: {
        upload_part: base,
        commit: `${base}/commit`,
        abort: base,
        list_parts: `${base}/parts`,
        status: base,
        log_event: `${base}/log`,
      },
    };
  };

  const digestOf = (req: IncomingMessage): string => {
    const m = /(?:^|,)\s*sha=([A-Za-z0-9+/=]+)/i.exec(String(req.headers.digest ?? ""));
    if (!m)
      throw new BoxApiError(400, "bad_request", "Missing or malformed Digest header (sha=<base64 SHA-1>)");
    return Buffer.from(m[1]!, "base64").toString("hex");
  };

  const createSession = (res: ServerResponse, body: Record<string, unknown>, existing?: BoxFile) => {
    const size = body.file_size;
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0)
      throw new BoxApiError(400, "bad_request", "file_size is required");
    if (size < MIN_CHUNKED_SIZE)
      throw new BoxApiError(
        400,
        "file_size_too_small",
        "File size is less than minimum allowed for this API",
      );
    let folderId: string | undefined;
    let fileName: string | undefined;
    if (existing) {
      if (body.file_name !== undefined) {
        fileName = checkName(body.file_name);
        store.checkFree(existing.parentId, fileName, existing.id);
      }
    } else {
      folderId = typeof body.folder_id === "string" ? body.folder_id : undefined;
      if (!folderId) throw new BoxApiError(400, "bad_request", "folder_id is required");
      store.folder(folderId);
      fileName = checkName(body.file_name);
      store.checkFree(folderId, fileName);
    }
    const s: UploadSession = {
      id: randomBytes(16).toString("hex").toUpperCase(),
      fileSize: size,
      partSize,
      totalParts: Math.max(1, Math.ceil(size / partSize)),
      ...(folderId ? { folderId } : {}),
      ...(fileName ? { fileName } : {}),
      ...(existing ? { fileId: existing.id } : {}),
      expiresAt: Date.now() + 7 * 24 * 3600 * 1000,
      parts: new Map(),
    };
    sessions.set(s.id, s);
    return sendJson(res, 201, sessionJson(s));
  };

  const session = (id: string): UploadSession => {
    const s = sessions.get(id);
    if (!s) throw new BoxApiError(404, "not_found", "Upload session not found");
    return s;
  };

  const uploadPart = async (req: IncomingMessage, res: ServerResponse, s: UploadSession) => {
    const sha = digestOf(req);
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers["content-range"] ?? ""));
    if (!m) throw new BoxApiError(400, "bad_request", "Missing or malformed Content-Range");
    const [a, b, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const last = b + 1 === s.fileSize;
    if (
      total !== s.fileSize ||
      a % s.partSize !== 0 ||
      b < a ||
      b >= s.fileSize ||
      (!last && b - a + 1 !== s.partSize)
    )
      throw new BoxApiError(416, "range_not_satisfiable", "The requested range is not satisfiable");
    if (s.parts.has(a))
      throw new BoxApiError(416, "range_not_satisfiable", "The part overlaps a part already uploaded");
    const data = await readBody(req, s.partSize + 1);
    if (data.length !== b - a + 1)
      throw new BoxApiError(400, "bad_request", "The body length does not match Content-Range");
    const got = sha1Hex(data);
    if (got !== sha) throw new BoxApiError(400, "bad_digest", "The digest does not match the part");
    const part = {
      part_id: randomBytes(4).toString("hex").toUpperCase(),
      offset: a,
      size: data.length,
      sha1: got,
    };
    s.parts.set(a, { ...part, data });
    return sendJson(res, 200, { part });
  };

  const commit = (
    req: IncomingMessage,
    res: ServerResponse,
    s: UploadSession,
    body: Record<string, unknown>,
  ) => {
    const sha = digestOf(req);
    const listed = Array.isArray(body.parts) ? (body.parts as Array<Record<string, unknown>>) : null;
    if (!listed) throw new BoxApiError(400, "bad_request", "parts is required");
    const stored = [...s.parts.values()].sort((x, y) => x.offset - y.offset);
    const same =
      listed.length === stored.length &&
      listed.every(
        (p, i) =>
          p.part_id === stored[i]!.part_id && p.offset === stored[i]!.offset && p.size === stored[i]!.size,
      );
    const covered = stored.reduce((n, p) => n + p.size, 0) === s.fileSize;
    if (!same || !covered)
      throw new BoxApiError(
        400,
        "parts_mismatch",
        "The parts do not match the parts uploaded to this session",
      );
    const data = Buffer.concat(stored.map((p) => p.data));
    if (sha1Hex(data) !== sha) throw new BoxApiError(400, "bad_digest", "The digest does not match the file");
    const attrs = (body.attributes ?? {}) as Record<string, unknown>;
    const times = {
      ...(time(attrs.content_created_at) ? { created: time(attrs.content_created_at)! } : {}),
      ...(time(attrs.content_modified_at) ? { modified: time(attrs.content_modified_at)! } : {}),
    };
    const existing = s.fileId ? (store.active(s.fileId, "file") as BoxFile) : undefined;
    const f = existing
      ? store.writeFile(existing.parentId, s.fileName ?? existing.name, data, times, existing)
      : store.writeFile(s.folderId!, s.fileName!, data, times);
    sessions.delete(s.id);
    return sendJson(res, 201, { total_count: 1, entries: [store.json(f)] });
  };

  const api = async (req: IncomingMessage, res: ServerResponse, url: URL, path: string) => {
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/users/me")
      return sendJson(res, 200, {
        ...OWNER,
        created_at: "2020-01-01T00:00:00Z",
        modified_at: boxTime(),
        language: "en",
        timezone: "UTC",
        space_amount: 10 * 1024 ** 3,
        space_used: store.size(store.folder(ROOT_FOLDER_ID)),
        max_upload_size: 5 * 1024 ** 3,
        status: "active",
        job_title: "",
        phone: "",
        address: "",
        avatar_url: "",
      });
    const m1 = /^\/folders\/([^/]+)\/items$/.exec(path);
    if (m1 && method === "GET") return folderItems(res, url, m1[1]!);
    const m1b = /^\/folders\/([^/]+)$/.exec(path);
    if (m1b) {
      const id = m1b[1]!;
      if (method === "GET") return sendJson(res, 200, store.json(store.folder(id), fieldsOf(url)));
      if (method === "PUT") return update(res, url, store.folder(id), jsonBody(await readBody(req, 1 << 20)));
      if (method === "DELETE") {
        const f = store.folder(id);
        if (id === ROOT_FOLDER_ID)
          throw new BoxApiError(403, "access_denied_insufficient_permissions", "Access denied");
        if (url.searchParams.get("recursive") !== "true" && store.children(id).length > 0)
          throw new BoxApiError(400, "folder_not_empty", "Cannot delete – folder not empty");
        store.trash(f);
        res.writeHead(204).end();
        return;
      }
    }
    if (path === "/folders" && method === "POST") {
      const body = jsonBody(await readBody(req, 1 << 20));
      const parentId = parentIdOf(body);
      if (!parentId) throw new BoxApiError(400, "bad_request", "parent.id is required");
      return sendJson(
        res,
        201,
        store.json(store.createFolder(parentId, checkName(body.name)), fieldsOf(url)),
      );
    }
    if ((path === "/files/content" || path === "/files/content/") && method === "OPTIONS") {
      const body = jsonBody(await readBody(req, 1 << 20));
      const parentId = parentIdOf(body);
      if (!parentId) throw new BoxApiError(400, "bad_request", "parent.id is required");
      store.folder(parentId);
      const name = checkName(body.name);
      const other = store.childNamed(parentId, name);
      if (other) throw store.conflict(other);
      return sendJson(res, 200, {
        upload_url: "https://upload.box.com/api/2.0/files/content",
        upload_token: randomBytes(12).toString("base64url"),
      });
    }
    const m2 = /^\/files\/([^/]+)\/content$/.exec(path);
    if (m2 && method === "GET") {
      const f = store.active(m2[1]!, "file") as BoxFile;
      const token = randomBytes(18).toString("base64url");
      downloads.set(token, { data: f.data, expires: Date.now() + 15 * 60_000 });
      res.writeHead(302, {
        location: `https://dl.boxcloud.com/d/1/${token}/download`,
        "content-length": "0",
      });
      res.end();
      return;
    }
    const m3 = /^\/files\/([^/]+)\/copy$/.exec(path);
    if (m3 && method === "POST") {
      const src = store.active(m3[1]!, "file") as BoxFile;
      const body = jsonBody(await readBody(req, 1 << 20));
      const parentId = parentIdOf(body);
      if (!parentId) throw new BoxApiError(400, "bad_request", "parent.id is required");
      const name = body.name === undefined ? src.name : checkName(body.name);
      const copy = store.writeFile(parentId, name, Buffer.from(src.data), {
        created: src.contentCreatedAt,
        modified: src.contentModifiedAt,
      });
      return sendJson(res, 201, store.json(copy, fieldsOf(url)));
    }
    const m4 = /^\/files\/([^/]+)$/.exec(path);
    if (m4) {
      const f = store.active(m4[1]!, "file");
      if (method === "GET") return sendJson(res, 200, store.json(f, fieldsOf(url)));
      if (method === "PUT") return update(res, url, f, jsonBody(await readBody(req, 1 << 20)));
      if (method === "DELETE") {
        store.trash(f);
        res.writeHead(204).end();
        return;
      }
    }
    throw new BoxApiError(404, "not_found", `Not Found: ${method} ${path}`);
  };

  const upload = async (req: IncomingMessage, res: ServerResponse, _url: URL, path: string) => {
    const method = req.method ?? "GET";
    if (path === "/files/content" && method === "POST") {
      const { attrs, data } = uploadForm(req, await readBody(req, MAX_BODY));
      const parentId = parentIdOf(attrs);
      if (!parentId) throw new BoxApiError(400, "bad_request", "attributes.parent.id is required");
      const f = store.writeFile(parentId, checkName(attrs.name), data, {
        ...(time(attrs.content_created_at) ? { created: time(attrs.content_created_at)! } : {}),
        ...(time(attrs.content_modified_at) ? { modified: time(attrs.content_modified_at)! } : {}),
      });
      return sendJson(res, 201, { total_count: 1, entries: [store.json(f)] });
    }
    const m5 = /^\/files\/([^/]+)\/content$/.exec(path);
    if (m5 && method === "POST") {
      const existing = store.active(m5[1]!, "file") as BoxFile;
      const { attrs, data } = uploadForm(req, await readBody(req, MAX_BODY));
      const name = attrs.name === undefined ? existing.name : checkName(attrs.name);
      const f = store.writeFile(
        existing.parentId,
        name,
        data,
        time(attrs.content_modified_at) ? { modified: time(attrs.content_modified_at)! } : {},
        existing,
      );
      return sendJson(res, 201, { total_count: 1, entries: [store.json(f)] });
    }
    if (path === "/files/upload_sessions" && method === "POST")
      return createSession(res, jsonBody(await readBody(req, 1 << 20)));
    const m9 = /^\/files\/([^/]+)\/upload_sessions$/.exec(path);
    if (m9 && method === "POST")
      return createSession(
        res,
        jsonBody(await readBody(req, 1 << 20)),
        store.active(m9[1]!, "file") as BoxFile,
      );
    const m6 = /^\/files\/upload_sessions\/([^/]+)$/.exec(path);
    if (m6) {
      const s = session(m6[1]!);
      if (method === "GET") return sendJson(res, 200, sessionJson(s));
      if (method === "PUT") return uploadPart(req, res, s);
      if (method === "DELETE") {
        sessions.delete(s.id);
        res.writeHead(204).end();
        return;
      }
    }
    const m7 = /^\/files\/upload_sessions\/([^/]+)\/parts$/.exec(path);
    if (m7 && method === "GET") {
      const s = session(m7[1]!);
      const entries = [...s.parts.values()]
        .sort((x, y) => x.offset - y.offset)
        .map(({ data: _d, ...p }) => p);
      return sendJson(res, 200, { entries, limit: 1000, offset: 0, total_count: entries.length });
    }
    const m8 = /^\/files\/upload_sessions\/([^/]+)\/commit$/.exec(path);
    if (m8 && method === "POST") {
      const s = session(m8[1]!);
      return commit(req, res, s, jsonBody(await readBody(req, 16 << 20)));
    }
    throw new BoxApiError(404, "not_found", `Not Found: ${method} ${path}`);
  };

  const download = (req: IncomingMessage, res: ServerResponse, path: string) => {
    const m = /^\/d\/1\/([^/]+)\/download$/.exec(path);
    const d = m ? downloads.get(m[1]!) : undefined;
    if (!d || d.expires < Date.now() || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
      return;
    }
    const size = d.data.length;
    const r = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ""));
    if (r && (r[1] || r[2])) {
      let a = r[1] ? Number(r[1]) : Math.max(0, size - Number(r[2]));
      let b = r[1] && r[2] ? Math.min(Number(r[2]), size - 1) : size - 1;
      if (!r[1]) b = size - 1;
      if (a >= size || a > b) {
        res.writeHead(416, { "content-range": `bytes */${size}` }).end();
        return;
      }
      a = Math.max(0, a);
      res.writeHead(206, {
        "content-type": "application/octet-stream",
        "content-length": String(b - a + 1),
        "content-range": `bytes ${a}-${b}/${size}`,
        "accept-ranges": "bytes",
      });
      res.end(d.data.subarray(a, b + 1));
      return;
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(size),
      "accept-ranges": "bytes",
    });
    res.end(d.data);
  };

  const token = async (req: IncomingMessage, res: ServerResponse) => {
    const form = new URLSearchParams((await readBody(req, 1 << 16)).toString("utf8"));
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const [bid, bsecret] = basic ? Buffer.from(basic[1]!, "base64").toString("utf8").split(":") : [];
    const id = form.get("client_id") ?? (bid ? decodeURIComponent(bid) : "");
    const secret = form.get("client_secret") ?? (bsecret ? decodeURIComponent(bsecret) : "");
    if (!id || !secret)
      return sendJson(res, 400, {
        error: "invalid_client",
        error_description: "The client credentials are invalid",
      });
    if (form.get("grant_type") !== "refresh_token")
      return sendJson(res, 400, {
        error: "unsupported_grant_type",
        error_description: "Grant type is not supported",
      });
    const refresh = form.get("refresh_token") ?? "";
    if (!refreshTokens.delete(refresh))
      return sendJson(res, 400, { error: "invalid_grant", error_description: "Invalid refresh token" });
    refreshes += 1;
    const t = issue();
    return sendJson(res, 200, {
      access_token: t.access,
      expires_in: tokenSeconds,
      restricted_to: [],
      refresh_token: t.refresh,
      token_type: "bearer",
    });
  };

  const handler =
    (host: "api" | "upload" | "dl"): RequestListener =>
    (req, res) => {
      const url = new URL(req.url ?? "/", `https://${req.headers.host ?? "box"}`);
      res.on("finish", () =>
        requests.push({
          host: url.host,
          method: req.method ?? "",
          path: url.pathname,
          status: res.statusCode,
        }),
      );
      (async () => {
        if (await faults.apply(req, res)) return;
        if (host === "dl") return download(req, res, url.pathname);
        if (host === "api" && url.pathname === "/oauth2/token" && req.method === "POST")
          return token(req, res);
        const prefix = host === "api" ? /^\/2\.0(\/.*)$/ : /^(?:\/api)?\/2\.0(\/.*)$/;
        const pm = prefix.exec(url.pathname);
        if (!pm) throw new BoxApiError(404, "not_found", "Not Found");
        const who = authenticate(req);
        rateLimit(who, host === "upload");
        return host === "api" ? api(req, res, url, pm[1]!) : upload(req, res, url, pm[1]!);
      })().catch((e: unknown) => {
        if (res.headersSent) return res.destroy();
        if (e instanceof BoxApiError) {
          if (e.status === 401) {
            // Box answers an unauthorised request with an empty body and the reason in WWW-Authenticate.
            res.writeHead(401, { ...e.headers, "content-length": "0" }).end();
            return;
          }
          // Drain what the client is still sending, so that it reads the answer.
          req.resume();
          return sendError(res, e);
        }
        sendError(res, new BoxApiError(500, "internal_server_error", String((e as Error)?.message ?? e)));
      });
    };

  const proxy = await startHttpsInterceptProxy({
    hosts: {
      "api.box.com": handler("api"),
      "upload.box.com": handler("upload"),
      "dl.boxcloud.com": handler("dl"),
    },
  });

  const mkdir = (path: string, from = ROOT_FOLDER_ID) => store.folderAt(path, true, from)!.id;
  return {
    proxyUrl: proxy.url,
    caCertFile: proxy.ca.certFile,
    caCertPem: proxy.ca.certPem,
    tokenUrl: "https://api.box.com/oauth2/token",
    clientId,
    clientSecret,
    accessToken: first.access,
    tokenJson(o = {}) {
      const t = issue(o.expired);
      return JSON.stringify({
        access_token: t.access,
        token_type: "Bearer",
        refresh_token: t.refresh,
        expiry: new Date(t.exp).toISOString(),
      });
    },
    get refreshes() {
      return refreshes;
    },
    store,
    mkdir,
    putFile(path, data, from = ROOT_FOLDER_ID) {
      const segs = path.split("/").filter(Boolean);
      const leaf = segs.pop()!;
      const dir = mkdir(segs.join("/"), from);
      const existing = store.childNamed(dir, leaf);
      const buf = typeof data === "string" ? Buffer.from(data) : data;
      return store.writeFile(dir, leaf, buf, {}, existing?.type === "file" ? existing : undefined).id;
    },
    readFile(path, from = ROOT_FOLDER_ID) {
      return store.fileAt(path, from)?.data;
    },
    list(path, from = ROOT_FOLDER_ID) {
      const f = store.folderAt(path, false, from);
      return f ? store.children(f.id).map((c) => c.name) : [];
    },
    pendingUploadSessions: () => [...sessions.keys()],
    requests,
    proxy,
    faults,
    stop: () => proxy.stop(),
  };
}

/** SHA-1 of bytes as Box's `Digest: sha=<base64>` header value. */
export const boxDigest = (b: Buffer) => `sha=${createHash("sha1").update(b).digest("base64")}`;
