import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import {
  CommandNotFoundError,
  codecs,
  RunnerError,
  redactSecrets,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { statusForError, type WireErrorBody } from "./http-errors.js";
import { HttpError } from "./http-server-policy.js";
import { scrubHostPaths } from "./http-server-scrub.js";

/** Plumbing every route of the runner server shares: bodies in, answers and NDJSON lines out. */

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit)
    throw new HttpError(413, "payload_too_large", `body of ${declared} bytes is over the limit of ${limit}`);
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

export function send(
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

/** Node's timers hold at most 2^31−1 ms; a longer timeout would fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function commandRequest(text: string) {
  const request = codecs.RunnerCommandRequest.decode(text);
  if (request.timeout_ms !== undefined && request.timeout_ms !== null && request.timeout_ms > MAX_TIMER_MS)
    throw new HttpError(
      400,
      "invalid_request",
      `timeout_ms: at most ${MAX_TIMER_MS} (about 24.8 days), got ${request.timeout_ms}`,
    );
  return request;
}

export type Line = (obj: unknown) => Promise<void>;

/** Writes `chunk` with backpressure: resolves once the socket took it (at once or at its next drain) or closed. */
export function writeDrained(res: ServerResponse, chunk: string | Uint8Array): Promise<void> {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** One NDJSON line per call; resolves once the socket took it (or the client is gone). */
export function lineWriter(res: ServerResponse): Line {
  return (obj) => (res.destroyed ? Promise.resolve() : writeDrained(res, `${JSON.stringify(obj)}\n`));
}

/** fs errors that only a client's path can cause (a name over 255 bytes, a file used as a directory, …). */
const PATH_ERRNOS = new Set(["ENAMETOOLONG", "ENOTDIR", "ELOOP", "EISDIR"]);

/** The errno of such an error, raw from a backend or wrapped in its generic `io_error`. */
export function pathErrno(error: unknown): string | undefined {
  if (RunnerError.isInstance(error) && error.code !== "io_error") return undefined;
  for (const e of [error, (error as { cause?: unknown } | null)?.cause]) {
    const code = (e as NodeJS.ErrnoException | null | undefined)?.code;
    if (typeof code === "string" && PATH_ERRNOS.has(code)) return code;
  }
  return undefined;
}

/** A JSON error for requests Node's HTTP parser refuses before any handler runs (unknown method, bad framing). */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
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

/**
 * The protocol's answer to an error: its status and `{ error }` payload, the message with secret values and the
 * server's host paths scrubbed. An error that is not typed says only "internal error".
 */
export function errorAnswer(
  error: unknown,
  secrets: Iterable<string>,
  hostPaths: ReadonlyArray<readonly [string, string]>,
): { status: number; payload: WireErrorBody["error"] } {
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
  payload.message = scrubHostPaths(redactSecrets(payload.message, secrets), hostPaths);
  return { status, payload };
}
