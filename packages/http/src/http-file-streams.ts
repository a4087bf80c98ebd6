import {
  CancelledError,
  ProviderApiError,
  type RunnerCallOptions,
  type RunnerFileStream,
  type RunnerFileStreamRequest,
} from "@roder/runner-contract";
import type { SessionWire } from "./http-wire.js";

/** The session's streamed file routes: ranged reads and chunked atomic writes, both with bounded memory. */

/**
 * `GET /files` with a `Range` header: the bytes arrive as the server sends them (bounded memory). A connection
 * cut in the middle ends `body` with a retryable `ProviderApiError`.
 */
export async function readFileStream(
  w: SessionWire,
  request: RunnerFileStreamRequest,
  options?: RunnerCallOptions,
): Promise<RunnerFileStream> {
  const offset = request.offset ?? 0;
  const { length } = request;
  // `bytes=a-` / `bytes=a-b`; an empty range still asks for one byte, to learn the size.
  const range =
    offset === 0 && length === undefined
      ? null
      : `bytes=${offset}-${length === undefined ? "" : offset + Math.max(length, 1) - 1}`;
  const url = `${w.path}/files?path=${encodeURIComponent(request.path)}`;
  const res = await w.t.request("GET", url, {
    signal: options?.signal,
    idempotent: true,
    operation: "read file",
    sessionId: w.sessionId,
    okStatuses: [416],
    ...(range ? { headers: { range } } : {}),
  });
  const contentRange = res.headers.get("content-range");
  let size: number;
  if (res.status === 206 || res.status === 416) {
    const m = /\/(\d+)\s*$/.exec(contentRange ?? "");
    if (!m)
      throw new ProviderApiError({
        providerId: w.providerId,
        message: `read file: the server answered ${res.status} without a usable Content-Range`,
        isRetryable: false,
      });
    size = Number(m[1]);
  } else {
    size = Number(res.headers.get("content-length") ?? Number.NaN);
  }
  const span = Math.max(0, Math.min(size - offset, length ?? Number.POSITIVE_INFINITY));
  // A server that ignores ranges answers 200 with the whole file: the range is cut out here.
  const skip = res.status === 200 ? offset : 0;
  const providerId = w.providerId;
  const signal = options?.signal;
  const source = res.status === 416 ? null : res.body;
  const body = (async function* () {
    if (!source) return;
    const reader = source.getReader();
    let skipped = 0;
    let sent = 0;
    try {
      while (sent < span) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (error) {
          if (signal?.aborted) throw new CancelledError({ operation: "readFileStream" }, { cause: error });
          throw new ProviderApiError(
            {
              providerId,
              message: `read file: the connection was cut after ${sent} of ${span} bytes`,
              isRetryable: true,
            },
            { cause: error },
          );
        }
        if (r.done) break;
        let chunk = r.value;
        if (skipped < skip) {
          const drop = Math.min(skip - skipped, chunk.byteLength);
          skipped += drop;
          chunk = chunk.subarray(drop);
        }
        if (chunk.byteLength === 0) continue;
        const part = chunk.subarray(0, span - sent);
        sent += part.byteLength;
        yield part;
      }
      if (sent < span)
        throw new ProviderApiError({
          providerId,
          message: `read file: the answer ended after ${sent} of ${span} bytes`,
          isRetryable: true,
        });
    } finally {
      await reader.cancel().catch(() => {});
    }
  })();
  return { path: request.path, size, offset, length: span, body };
}

/**
 * `PUT /files` with the chunks as a streamed body (bounded memory). Not retried (a stream cannot be resent);
 * the server writes atomically, so a failed call leaves the old file.
 */
export async function writeFileStream(
  w: SessionWire,
  path: string,
  body: AsyncIterable<Uint8Array>,
  options?: RunnerCallOptions,
): Promise<{ bytes: number }> {
  let bytes = 0;
  let sourceError: { error: unknown } | null = null;
  const counted = (async function* () {
    try {
      for await (const chunk of body) {
        bytes += chunk.byteLength;
        yield chunk;
      }
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  })();
  try {
    await w.t.request("PUT", `${w.path}/files?path=${encodeURIComponent(path)}`, {
      body: counted,
      signal: options?.signal,
      idempotent: false,
      operation: "write file",
      sessionId: w.sessionId,
    });
  } catch (error) {
    // The source's own failure, not the connection's words for it.
    if (sourceError) throw (sourceError as { error: unknown }).error;
    throw error;
  }
  return { bytes };
}
