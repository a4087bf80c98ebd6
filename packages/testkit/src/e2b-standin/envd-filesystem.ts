import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { posix } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { END_STREAM, envelope, readFirstEnvelope } from "./connect-envelope.js";
import {
  ApiError,
  acceptsGzip,
  CONNECT_STATUS,
  json,
  metadataHeaders,
  parseMultipart,
  readBody,
  userOf,
} from "./e2b-http.js";
import type { E2bStandInSandbox } from "./e2b-standin-types.js";
import { EnvdFsError, fsOp, startWatch, watchEvent } from "./envd-fs.js";
import { type EnvdUser, lookupUser, resolvePath } from "./envd-paths.js";
import { checkFileAccess } from "./envd-signature.js";

// envd's filesystem: `/files` (raw bytes down and up), the unary filesystem RPCs and `WatchDir`'s stream, each
// acting in the sandbox through its backend session (envd-fs.ts runs the operations there).

/** `GET|POST /files`: the access token or a signed URL; paths resolved as the user; gzip both ways. */
export async function files(req: IncomingMessage, res: ServerResponse, url: URL, s: E2bStandInSandbox) {
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

/** `filesystem.Filesystem/WatchDir`: inotify in the sandbox, its events as they come, until the client goes. */
export async function watchDir(
  req: IncomingMessage,
  res: ServerResponse,
  s: E2bStandInSandbox,
): Promise<void> {
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

/** A unary `filesystem.Filesystem` RPC (Stat, ListDir, MakeDir, Move, Remove), paths resolved as the RPC's user. */
export async function filesystemRpc(
  req: IncomingMessage,
  s: E2bStandInSandbox,
  rpc: string,
  body: Record<string, unknown>,
): Promise<unknown> {
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
  if (rpc === "Move") return fs(s, "move", { source: abs(body.source), destination: abs(body.destination) });
  if (rpc === "Remove") return fs(s, "remove", { path: abs(body.path) });
  throw new ApiError(404, `unknown method filesystem.Filesystem/${rpc}`, "unimplemented");
}
