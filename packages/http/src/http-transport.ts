import {
  createHttpClient,
  type HttpAnswer,
  type RetryPolicy,
  type TokenSource,
} from "@roder/runner-contract";
import { errorFromResponse } from "./http-errors.js";

export type { HttpAnswer };

export interface HttpTransport {
  request(
    method: string,
    path: string,
    opts: {
      json?: string;
      /** Bytes, or a stream of chunks (sent chunked; such a call is never retried: a stream cannot be resent). */
      body?: Uint8Array | AsyncIterable<Uint8Array>;
      /** Extra request headers (e.g. `range`). */
      headers?: Record<string, string>;
      /** Statuses answered as they are, not as errors (e.g. 416 for a range past the end). */
      okStatuses?: number[];
      signal?: AbortSignal | undefined;
      idempotent: boolean;
      operation: string;
      sessionId?: string;
      /**
       * Read the whole answer inside the attempt: a connection cut in the middle of the body is then a typed
       * ProviderApiError, and retried with the rest of the call when it is idempotent.
       */
      buffer?: boolean;
    },
  ): Promise<HttpAnswer>;
}

/**
 * The protocol's client over the contract's HTTP client: bearer token (asked per attempt), retries of idempotent
 * calls, and the protocol's error bodies turned back into typed errors.
 */
export function createTransport(args: {
  providerId: string;
  baseUrl: string;
  token: TokenSource;
  /** Where the token comes from, as a refusal names it ("the token option" or the variable). */
  tokenEnv: string;
  fetch: typeof globalThis.fetch;
  retry: RetryPolicy;
  onRetry?: (operation: string, attempt: number, error: unknown) => void;
}): HttpTransport {
  const client = createHttpClient({
    providerId: args.providerId,
    baseUrl: args.baseUrl,
    auth: { token: args.token },
    fetch: args.fetch,
    retry: args.retry,
    onRetry: args.onRetry,
  });
  return {
    request(method, path, opts) {
      return client.request({
        method,
        path,
        operation: opts.operation,
        idempotent: opts.idempotent,
        ...(opts.json !== undefined ? { body: opts.json, contentType: "application/json" } : {}),
        ...(opts.json === undefined && opts.body !== undefined ? { body: opts.body } : {}),
        ...(opts.headers ? { headers: opts.headers } : {}),
        ...(opts.okStatuses ? { okStatuses: opts.okStatuses } : {}),
        ...(opts.buffer ? { buffer: true } : {}),
        signal: opts.signal,
        errorFor: (a) =>
          errorFromResponse({
            providerId: a.providerId,
            status: a.status,
            body: a.body,
            url: a.url,
            operation: a.operation,
            tokenEnv: args.tokenEnv,
            ...(opts.sessionId ? { sessionId: opts.sessionId } : {}),
            ...(a.retryAfterMs !== undefined ? { retryAfterMs: a.retryAfterMs } : {}),
          }),
      });
    },
  };
}
