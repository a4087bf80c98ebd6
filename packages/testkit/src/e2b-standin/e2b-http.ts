import type { IncomingMessage, ServerResponse } from "node:http";
import { type EnvdUser, rpcUser } from "./envd-paths.js";

/** An error the stand-in answers: `{code, message}`, a Connect error on envd's routes, or an exact body. */
export class ApiError extends Error {
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
export function sandboxNotFound(sandboxId: string): ApiError {
  return new ApiError(502, "The sandbox was not found", undefined, {
    sandboxId,
    message: "The sandbox was not found",
    code: 502,
  });
}

/** E2B's control-plane message for an unknown or gone sandbox (infra utils.SandboxNotFoundMsg). */
export const notFoundMsg = (id: string) =>
  `Sandbox ${JSON.stringify(id)} doesn't exist or you don't have access to it`;

/** The HTTP status of each Connect error code. */
export const CONNECT_STATUS: Record<string, number> = {
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

/** A JSON answer (no body: the status alone). */
export const json = (res: ServerResponse, status: number, body?: unknown) => {
  if (body === undefined) return void res.writeHead(status).end();
  const text = JSON.stringify(body);
  res
    .writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    .end(text);
};

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A request's JSON body (`{}` when empty; a body that is not JSON throws, answered 500 as before). */
export async function readJsonBody<T = Record<string, unknown>>(req: IncomingMessage): Promise<T> {
  return JSON.parse((await readBody(req)).toString() || "{}") as T;
}

/** Whether `Accept-Encoding` asks for gzip (with a non-zero quality), as envd's download negotiates. */
export function acceptsGzip(header: string | string[] | undefined): boolean {
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
export function metadataHeaders(req: IncomingMessage): Record<string, string> {
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

/** Splits a multipart/form-data body into its file parts (filename, bytes). */
export function parseMultipart(
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

/** envd's access check for everything but `/health` and `/files` (which take a token or a signature). */
export function checkToken(req: IncomingMessage, accessToken: string): void {
  if (req.headers["x-access-token"] !== accessToken) {
    const message = "unauthorized access, please provide a valid access token or method signing if supported";
    throw new ApiError(401, message, "unauthenticated", { code: 401, message });
  }
}

/** The user an RPC acts as; an unknown one is envd's 401. */
export function userOf(req: IncomingMessage): EnvdUser {
  try {
    return rpcUser(req.headers.authorization);
  } catch (e) {
    throw new ApiError(401, (e as Error).message, "unauthenticated");
  }
}
