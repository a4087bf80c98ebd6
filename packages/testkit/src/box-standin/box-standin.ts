import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";
import { type HttpsInterceptProxy, startHttpsInterceptProxy } from "../https-intercept/intercept-proxy.js";
import { createBoxAuth } from "./box-auth.js";
import {
  errorBody,
  fieldsOf,
  jsonBody,
  parentIdOf,
  readBody,
  sendBytes,
  sendError,
  sendJson,
  timeField,
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
} from "./box-store.js";
import { createBoxUploads } from "./box-uploads.js";

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

export async function startBoxStandIn(opts: BoxStandInOptions = {}): Promise<BoxStandIn> {
  const store = new BoxStore();
  const limits: BoxRateLimit | null =
    opts.rateLimit === false ? null : { perMinute: 1000, uploadsPerMinute: 240, ...(opts.rateLimit ?? {}) };
  const partSize = opts.uploadPartSize ?? 8 * 1024 * 1024;
  const tokenSeconds = opts.accessTokenSeconds ?? 3600;
  const clientId = `roder-box-client-${randomBytes(4).toString("hex")}`;
  const clientSecret = randomBytes(16).toString("hex");
  const auth = createBoxAuth(limits, tokenSeconds);
  const { issue, authenticate, rateLimit, token } = auth;
  const first = issue();
  const downloads = new Map<string, { data: Buffer; expires: number }>();
  const { sessions, upload } = createBoxUploads(store, partSize);
  const requests: BoxRequestRecord[] = [];
  const faults = createFaultSwitch((status) =>
    errorBody(
      status,
      status === 429 ? "rate_limit_exceeded" : "internal_server_error",
      status === 429 ? "Request rate limit exceeded, please try again later" : "Internal Server Error",
    ),
  );

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
      const m = timeField(body.content_modified_at);
      if (m) it.contentModifiedAt = m;
    }
    it.sequence += 1;
    if (it.type === "file") it.modifiedAt = boxTime();
    return sendJson(res, 200, store.json(it, fieldsOf(url)));
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

  const download = (req: IncomingMessage, res: ServerResponse, path: string) => {
    const m = /^\/d\/1\/([^/]+)\/download$/.exec(path);
    const d = m ? downloads.get(m[1]!) : undefined;
    if (!d || d.expires < Date.now() || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
      return;
    }
    sendBytes(req, res, d.data);
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
      return auth.refreshes;
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
