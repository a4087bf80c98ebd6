import {
  CancelledError,
  codecs,
  ProviderApiError,
  type RunnerArtifactExportResult,
  RunnerError,
  type RunnerExportOptions,
} from "@roder/runner-contract";
import { errorFromResponse } from "./http-errors.js";
import { decodeFrame, type StreamFrame } from "./http-frames.js";
import type { HttpAnswer, HttpTransport } from "./http-transport.js";

/** What a session's modules share: the transport and where the session lives on the server. */
export interface SessionWire {
  readonly t: HttpTransport;
  /** `/sessions/{id}`. */
  readonly path: string;
  readonly providerId: string;
  readonly sessionId: string;
}

/**
 * The NDJSON frames of a streamed answer, decoded and checked, in order. A line that is not a frame this client
 * knows is a typed `provider_api` error; a connection cut mid-answer rejects with the transport's error.
 */
export async function* readFrames(
  body: ReadableStream<Uint8Array>,
  what: string,
): AsyncGenerator<StreamFrame> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const part of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(part, { stream: true });
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.trim()) continue;
      const frame = decodeFrame(line);
      if (!frame) throw new RunnerError("provider_api", `the ${what} sent a frame this client cannot read`);
      yield frame;
    }
  }
}

/** An `error` frame as the typed error the same answer would have been without streaming. */
export function frameError(
  w: SessionWire,
  frame: Extract<StreamFrame, { type: "error" }>,
  operation: string,
): RunnerError {
  return errorFromResponse({
    providerId: w.providerId,
    status: frame.status ?? 500,
    body: { error: frame.error },
    url: w.path,
    operation,
    tokenEnv: "the token",
    sessionId: w.sessionId,
  });
}

/**
 * An export answered as a stream (`Accept: application/x-ndjson`): progress frames to the listener, then the
 * result or the typed error. A cut before the result is a non-retryable error: the export may have finished.
 */
export async function readExportStream(
  w: SessionWire,
  res: HttpAnswer,
  onProgress: NonNullable<RunnerExportOptions["onProgress"]>,
  signal: AbortSignal | undefined,
): Promise<RunnerArtifactExportResult> {
  if (!res.body) throw new RunnerError("provider_api", "the export stream has no body");
  let outcome: { result: RunnerArtifactExportResult } | { error: RunnerError } | undefined;
  try {
    for await (const msg of readFrames(res.body, "export stream")) {
      if (msg.type === "progress") {
        try {
          onProgress({
            phase: msg.phase,
            bytes: msg.bytes,
            ...(msg.total !== undefined ? { total: msg.total } : {}),
          });
        } catch {
          // A progress listener never breaks an export.
        }
      } else if (msg.type === "result") {
        outcome = { result: codecs.RunnerArtifactExportResult.parse(msg.result) };
        break;
      } else if (msg.type === "error") {
        outcome = { error: frameError(w, msg, "export artifact") };
        break;
      }
    }
  } catch (error) {
    if (signal?.aborted) throw new CancelledError({ operation: "export artifact" });
    if (RunnerError.isInstance(error) && error.code !== "provider_api") throw error;
    throw new ProviderApiError(
      {
        providerId: w.providerId,
        message: "export artifact: the connection was cut before the result (the export may have finished)",
        isRetryable: false,
      },
      { cause: error },
    );
  }
  if (outcome && "error" in outcome) throw outcome.error;
  if (outcome) return outcome.result;
  throw new ProviderApiError({
    providerId: w.providerId,
    message: "export artifact: the stream ended without a result (the export may have finished)",
    isRetryable: false,
  });
}
