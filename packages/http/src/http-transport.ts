import { CancelledError, ProviderApiError } from "@roder/runner-contract";
import { errorFromResponse, parseRetryAfter } from "./http-errors.js";
import { isNetworkError, type RetryPolicy, withRetry } from "./http-retry.js";

/** What a call answers: a fetch `Response`, or for `buffer: true` the same surface over bytes already read. */
export type HttpAnswer = Pick<
  Response,
  "status" | "ok" | "headers" | "body" | "arrayBuffer" | "text" | "json"
>;

/** An answer whose body was read whole: its accessors hand out those bytes without another copy. */
function bufferedAnswer(res: Response, bytes: ArrayBuffer): HttpAnswer {
  return {
    status: res.status,
    ok: res.ok,
    headers: res.headers,
    body: null,
    arrayBuffer: async () => bytes,
    text: async () => new TextDecoder().decode(bytes),
    json: async () => JSON.parse(new TextDecoder().decode(bytes)),
  };
}

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

/** An async iterable of chunks as a fetch request body (pulled as the connection takes them). */
function streamBody(source: AsyncIterable<Uint8Array>): RequestInit["body"] {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      void reason;
      await it.return?.().catch(() => {});
    },
  }) as unknown as RequestInit["body"];
}

/** fetch + bearer token + typed errors + retries of idempotent calls. The token is read from env per call. */
export function createTransport(args: {
  providerId: string;
  baseUrl: string;
  token: () => string | Promise<string>;
  tokenEnv: string;
  fetch: typeof globalThis.fetch;
  retry: RetryPolicy;
  onRetry?: (operation: string, attempt: number, error: unknown) => void;
}): HttpTransport {
  return {
    async request(method, path, opts) {
      const url = `${args.baseUrl}${path}`;
      const once = async (): Promise<HttpAnswer> => {
        const headers: Record<string, string> = {
          ...opts.headers,
          authorization: `Bearer ${await args.token()}`,
        };
        let body: RequestInit["body"] | undefined;
        let duplex = false;
        if (opts.json !== undefined) {
          headers["content-type"] = "application/json";
          body = opts.json;
        } else if (opts.body instanceof Uint8Array) {
          headers["content-type"] = "application/octet-stream";
          body = opts.body as unknown as RequestInit["body"];
        } else if (opts.body) {
          headers["content-type"] = "application/octet-stream";
          body = streamBody(opts.body);
          duplex = true;
        }
        let res: Response;
        try {
          res = await args.fetch(url, {
            method,
            headers,
            ...(body !== undefined ? { body } : {}),
            // A streamed request body (fetch needs it said).
            ...(duplex ? { duplex: "half" } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
        } catch (error) {
          if (opts.signal?.aborted) throw new CancelledError({ operation: opts.operation }, { cause: error });
          throw new ProviderApiError(
            {
              providerId: args.providerId,
              url,
              message: `${opts.operation}: ${isNetworkError(error) ? "connection failed" : (error as Error).message}`,
              // A call that is not idempotent may have taken effect: never advertise it as safe to repeat.
              isRetryable: isNetworkError(error) && opts.idempotent,
            },
            { cause: error },
          );
        }
        const ok = res.ok || (opts.okStatuses?.includes(res.status) ?? false);
        if (ok && !opts.buffer) return res;
        if (ok) {
          let bytes: ArrayBuffer;
          try {
            bytes = await res.arrayBuffer();
          } catch (error) {
            if (opts.signal?.aborted)
              throw new CancelledError({ operation: opts.operation }, { cause: error });
            throw new ProviderApiError(
              {
                providerId: args.providerId,
                url,
                message: `${opts.operation}: the connection was cut in the middle of the answer`,
                isRetryable: opts.idempotent,
              },
              { cause: error },
            );
          }
          return bufferedAnswer(res, bytes);
        }
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(await res.text());
        } catch {
          parsed = null;
        }
        throw errorFromResponse({
          providerId: args.providerId,
          status: res.status,
          body: parsed,
          url,
          operation: opts.operation,
          tokenEnv: args.tokenEnv,
          ...(opts.sessionId ? { sessionId: opts.sessionId } : {}),
          ...(parseRetryAfter(res.headers.get("retry-after")) !== undefined
            ? { retryAfterMs: parseRetryAfter(res.headers.get("retry-after"))! }
            : {}),
        });
      };
      if (!opts.idempotent) return once();
      return withRetry(() => once(), {
        policy: args.retry,
        signal: opts.signal,
        onRetry: (n, e) => args.onRetry?.(opts.operation, n, e),
      });
    },
  };
}
