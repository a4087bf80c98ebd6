import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type FormPart,
  jsonBody,
  parentIdOf,
  parseMultipart,
  readBody,
  sendJson,
  timeField,
} from "./box-http.js";
import { BoxApiError, type BoxFile, type BoxStore, boxTime, checkName, sha1Hex } from "./box-store.js";

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

/**
 * The upload host (upload.box.com): multipart uploads of new files and new versions, and chunked upload
 * sessions (create, parts with `Digest` and `Content-Range` checks, list parts, commit with the whole-file
 * SHA-1, abort).
 */
export function createBoxUploads(store: BoxStore, partSize: number) {
  const sessions = new Map<string, UploadSession>();

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
      ...(timeField(attrs.content_created_at) ? { created: timeField(attrs.content_created_at)! } : {}),
      ...(timeField(attrs.content_modified_at) ? { modified: timeField(attrs.content_modified_at)! } : {}),
    };
    const existing = s.fileId ? (store.active(s.fileId, "file") as BoxFile) : undefined;
    const f = existing
      ? store.writeFile(existing.parentId, s.fileName ?? existing.name, data, times, existing)
      : store.writeFile(s.folderId!, s.fileName!, data, times);
    sessions.delete(s.id);
    return sendJson(res, 201, { total_count: 1, entries: [store.json(f)] });
  };

  const upload = async (req: IncomingMessage, res: ServerResponse, _url: URL, path: string) => {
    const method = req.method ?? "GET";
    if (path === "/files/content" && method === "POST") {
      const { attrs, data } = uploadForm(req, await readBody(req, MAX_BODY));
      const parentId = parentIdOf(attrs);
      if (!parentId) throw new BoxApiError(400, "bad_request", "attributes.parent.id is required");
      const f = store.writeFile(parentId, checkName(attrs.name), data, {
        ...(timeField(attrs.content_created_at) ? { created: timeField(attrs.content_created_at)! } : {}),
        ...(timeField(attrs.content_modified_at) ? { modified: timeField(attrs.content_modified_at)! } : {}),
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
        timeField(attrs.content_modified_at) ? { modified: timeField(attrs.content_modified_at)! } : {},
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

  return { sessions, upload };
}
