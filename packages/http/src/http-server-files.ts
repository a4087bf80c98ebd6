import type { IncomingMessage, ServerResponse } from "node:http";
import {
  openFileStream,
  type RemoteRunnerSession,
  type RunnerFileStream,
  writeFileFromStream,
} from "@roder/runner-contract";
import type { ServerContext, SessionRequest } from "./http-server-context.js";
import { send, writeDrained } from "./http-server-io.js";
import { HttpError } from "./http-server-policy.js";

/**
 * The file routes with bounded memory: `GET /files` streams the file (or the byte range the `Range` header asks
 * for: `bytes=a-b`, `bytes=a-`, `bytes=-n`; a range past the end is a 416 with `Content-Range: bytes *\/size`),
 * `PUT /files` streams the body into the backend's `writeFileStream` (atomic there: a body cut or over the limit
 * leaves the old file). Backends without the streaming methods are served through the contract's fallbacks,
 * whole files in memory, up to `bufferedLimit`.
 */

/** A parsed `Range` header: one range (multiple ranges and other units are answered whole, as RFC 9110 allows). */
type ByteRange = { kind: "from"; start: number; end: number | null } | { kind: "suffix"; length: number };

export function parseRange(header: string | undefined): ByteRange | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const length = Number(m[2]);
    return Number.isSafeInteger(length) ? { kind: "suffix", length } : null;
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? null : Number(m[2]);
  if (!Number.isSafeInteger(start) || (end !== null && (!Number.isSafeInteger(end) || end < start)))
    return null;
  return { kind: "from", start, end };
}

/** Writes `body` to `res` with backpressure; stops reading when the client goes away. */
async function pipeBody(res: ServerResponse, body: AsyncIterable<Uint8Array>): Promise<void> {
  const it = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (res.destroyed) return;
      const { value, done } = await it.next();
      if (done) return;
      await writeDrained(res, value);
    }
  } finally {
    await it.return?.();
  }
}

/** Ends an unread body (its file handle or process is released). */
async function discard(stream: RunnerFileStream): Promise<void> {
  await stream.body[Symbol.asyncIterator]().return?.();
}

export async function getFile(
  req: IncomingMessage,
  res: ServerResponse,
  session: RemoteRunnerSession,
  path: string,
  signal: AbortSignal,
): Promise<void> {
  const range = parseRange(req.headers.range);
  let stream: RunnerFileStream;
  if (range?.kind === "suffix") {
    // The size first (an empty read), then the last `length` bytes.
    const probe = await openFileStream(session, { path, length: 0 }, { signal });
    await discard(probe);
    const length = Math.min(range.length, probe.size);
    stream = await openFileStream(session, { path, offset: probe.size - length, length }, { signal });
  } else if (range) {
    stream = await openFileStream(
      session,
      { path, offset: range.start, ...(range.end !== null ? { length: range.end - range.start + 1 } : {}) },
      { signal },
    );
  } else {
    stream = await openFileStream(session, { path }, { signal });
  }
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    "accept-ranges": "bytes",
    "cache-control": "no-store",
  };
  if (range && stream.offset >= stream.size && !(range.kind === "suffix" && stream.size === 0)) {
    await discard(stream);
    res.writeHead(416, { ...headers, "content-range": `bytes */${stream.size}`, "content-length": "0" });
    res.end();
    return;
  }
  if (range && stream.size > 0) {
    headers["content-range"] = `bytes ${stream.offset}-${stream.offset + stream.length - 1}/${stream.size}`;
    headers["content-length"] = String(stream.length);
    res.writeHead(206, headers);
  } else {
    headers["content-length"] = String(stream.length);
    res.writeHead(200, headers);
  }
  // A file that shrinks while it is read: the answer is cut short, and the client sees a short body.
  await pipeBody(res, stream.body);
  res.end();
}

export async function putFile(
  req: IncomingMessage,
  session: RemoteRunnerSession,
  path: string,
  limits: { maxFile: number; bufferedLimit: number },
  signal: AbortSignal,
): Promise<number> {
  const streamed = typeof session.writeFileStream === "function";
  const limit = streamed ? limits.maxFile : Math.min(limits.maxFile, limits.bufferedLimit);
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit)
    throw new HttpError(413, "payload_too_large", `body of ${declared} bytes is over the limit of ${limit}`);
  let size = 0;
  async function* body(): AsyncGenerator<Uint8Array> {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit)
        throw new HttpError(413, "payload_too_large", `body is over the limit of ${limit} bytes`);
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    // A client that went away mid-body: the stream ends early without an error on some Node versions.
    if (req.readableAborted || !req.complete)
      throw new HttpError(400, "invalid_request", "the request body was cut short");
  }
  try {
    const { bytes } = await writeFileFromStream(session, { path }, body(), { signal });
    return bytes;
  } catch (error) {
    // The limit is the client's error whatever the backend made of the body's exception.
    if (size > limit)
      throw new HttpError(413, "payload_too_large", `body is over the limit of ${limit} bytes`);
    throw error;
  }
}

/** `GET` / `PUT /sessions/{id}/files?path=`; false for another method. */
export async function fileRoute(ctx: ServerContext, { req, res, url, e }: SessionRequest): Promise<boolean> {
  const m = req.method ?? "GET";
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
      if (m === "GET") await getFile(req, res, e.session, filePath, ac.signal);
      else {
        await putFile(
          req,
          e.session,
          filePath,
          { maxFile: ctx.maxFile, bufferedLimit: ctx.maxBufferedFile },
          ac.signal,
        );
        send(res, 204);
      }
      return true;
    } finally {
      res.off("close", onClose);
    }
  }
  return false;
}
