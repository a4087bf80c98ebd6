import type { IncomingMessage, ServerResponse } from "node:http";
import { BoxApiError, boxTime } from "./box-store.js";

const HELP_URL = "http://developers.box.com/docs/#errors";

/** Box's client-error body (`{type: "error", status, code, message, help_url, request_id, context_info?}`). */
export function errorBody(status: number, code: string, message: string, contextInfo?: unknown): string {
  return JSON.stringify({
    type: "error",
    status,
    code,
    ...(contextInfo !== undefined ? { context_info: contextInfo } : {}),
    help_url: HELP_URL,
    message,
    request_id: Math.random().toString(36).slice(2, 14),
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, e: BoxApiError) {
  const text = errorBody(e.status, e.code, e.message, e.contextInfo);
  res.writeHead(e.status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...e.headers,
  });
  res.end(text);
}

/** The request body, at most `limit` bytes (413 beyond). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new BoxApiError(413, "request_entity_too_large", "Request Entity Too Large");
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export function jsonBody(buf: Buffer): Record<string, unknown> {
  if (buf.length === 0) return {};
  try {
    const v = JSON.parse(buf.toString("utf8"));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw new BoxApiError(400, "bad_request", "Could not parse JSON");
}

export interface FormPart {
  name: string;
  filename?: string;
  data: Buffer;
}

/** Parses a `multipart/form-data` body (Box's upload: an `attributes` JSON part before the file part). */
export function parseMultipart(contentType: string | undefined, body: Buffer): FormPart[] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
  if (!/^multipart\/form-data/i.test(contentType ?? "") || !m)
    throw new BoxApiError(400, "bad_request", "Expected multipart/form-data");
  const delim = Buffer.from(`--${m[1] ?? m[2]}`);
  const parts: FormPart[] = [];
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    let start = pos + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    start += 2; // CRLF
    const headEnd = body.indexOf("\r\n\r\n", start);
    if (headEnd < 0) break;
    const head = body.subarray(start, headEnd).toString("utf8");
    const next = body.indexOf(delim, headEnd + 4);
    if (next < 0) break;
    const data = body.subarray(headEnd + 4, next - 2); // the CRLF before the delimiter
    const disp = /content-disposition:[^\r\n]*/i.exec(head)?.[0] ?? "";
    const name = /\bname="([^"]*)"/i.exec(disp)?.[1] ?? "";
    const filename = /\bfilename="([^"]*)"/i.exec(disp)?.[1];
    parts.push({ name, ...(filename !== undefined ? { filename } : {}), data });
    pos = next;
  }
  return parts;
}

/** The `fields` query parameter as a list (undefined: the default fields). */
export const fieldsOf = (url: URL) =>
  url.searchParams
    .get("fields")
    ?.split(",")
    .map((f) => f.trim())
    .filter(Boolean);

/** `parent.id` of a request body. */
export function parentIdOf(body: Record<string, unknown>): string | undefined {
  const p = body.parent as { id?: unknown } | undefined;
  return p && typeof p.id === "string" ? p.id : undefined;
}

/** A date field of a request body in Box's format (400 when it is not a date). */
export function timeField(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new BoxApiError(400, "bad_request", `Invalid date ${v}`);
  return boxTime(t);
}

/** A download's bytes, whole or the asked Range (206, or 416 outside the file). */
export function sendBytes(req: IncomingMessage, res: ServerResponse, data: Buffer): void {
  const size = data.length;
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
    res.end(data.subarray(a, b + 1));
    return;
  }
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": String(size),
    "accept-ranges": "bytes",
  });
  res.end(data);
}
