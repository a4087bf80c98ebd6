import type { z } from "zod";
import { CancelledError } from "./errors/cancelled-error.js";
import { ProviderApiError } from "./errors/provider-api-error.js";
import { RunnerError } from "./errors/runner-error.js";
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from "./retry.js";

/** A credential: the value, or a function asked before each attempt (a token rotated in a secret store). */
export type TokenSource = string | (() => string | Promise<string>);

export interface HttpClientAuth {
  token: TokenSource;
  /** The header that carries it (default `authorization`). */
  header?: string;
  /** What precedes the value (default `Bearer` in `authorization`, nothing in another header). */
  scheme?: string;
}

/** What a call answers: a fetch `Response`, or for `buffer: true` the same surface over bytes already read. */
export type HttpAnswer = Pick<
  Response,
  "status" | "ok" | "headers" | "body" | "arrayBuffer" | "text" | "json"
>;

/** A non-OK answer, as an error mapper sees it. `text` has the token scrubbed out; `url` has no query. */
export interface HttpErrorAnswer {
  providerId: string;
  operation: string;
  status: number;
  url: string;
  headers: Headers;
  text: string;
  /** The body as JSON, or null. */
  body: unknown;
  /** The API's message: `{error: "…"}`, `{error: {message}}`, `{message}`, else the start of the text. */
  message: string;
  retryAfterMs: number | undefined;
}

export interface HttpCall {
  method: string;
  /** Appended to the client's base URL (query included). */
  path: string;
  /** Names the call in errors ("create session"). */
  operation: string;
  /** Safe to repeat: only idempotent calls are retried (unless `shouldRetry` says otherwise). */
  idempotent: boolean;
  /** A value sent as JSON (serialised once, before the first attempt). */
  json?: unknown;
  /** A body: text, bytes, or a stream of chunks (sent chunked; such a call is never retried). */
  body?: string | Uint8Array | AsyncIterable<Uint8Array>;
  /** Default `application/json` for `json`, `application/octet-stream` for bytes and streams. */
  contentType?: string;
  headers?: Record<string, string>;
  /** Statuses answered as they are, not as errors (e.g. 416 for a range past the end). */
  okStatuses?: number[];
  signal?: AbortSignal | undefined;
  /** Per attempt: a slower answer is a retryable "timed out" failure. */
  timeoutMs?: number | undefined;
  /**
   * Read the whole answer inside the attempt: a connection cut in the middle of the body is then a typed
   * ProviderApiError, and retried with the rest of the call when it is idempotent.
   */
  buffer?: boolean;
  /** Awaited before each attempt (a client-side rate limiter). */
  beforeAttempt?: (signal: AbortSignal | undefined) => Promise<void>;
  /** Told of each failed attempt (counting 429s, penalising a limiter). */
  onAttemptError?: (error: unknown) => void;
  /** Which failures to retry (default: `idempotent` and a retryable RunnerError). */
  shouldRetry?: (error: unknown) => boolean;
  /** Maps a non-OK answer to an error (default the client's). */
  errorFor?: (answer: HttpErrorAnswer) => unknown;
}

export interface HttpClientOptions {
  providerId: string;
  baseUrl: string;
  auth?: HttpClientAuth | undefined;
  fetch?: typeof globalThis.fetch | undefined;
  retry?: RetryPolicy | undefined;
  /** Sent with every request. */
  headers?: Record<string, string> | undefined;
  onRetry?: ((operation: string, attempt: number, error: unknown) => void) | undefined;
  /** Maps a non-OK answer to an error (default a ProviderApiError with the API's message and Retry-After). */
  errorFor?: ((answer: HttpErrorAnswer) => unknown) | undefined;
}

export interface HttpClient {
  readonly providerId: string;
  readonly baseUrl: string;
  request(call: HttpCall): Promise<HttpAnswer>;
  /** The answer's JSON (undefined for an empty body), checked by `schema` when given. */
  json<T = unknown>(call: HttpCall, schema?: z.ZodType<T>): Promise<T>;
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date (a date past is 0). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Network failures (reset, refused, socket closed) are worth retrying; aborts and timeouts are not. */
export function isNetworkError(error: unknown): boolean {
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")) return false;
  return (
    error instanceof TypeError ||
    (error as { code?: string })?.code === "ECONNRESET" ||
    /fetch failed|socket|ECONNRESET|ECONNREFUSED|other side closed/i.test(
      String((error as Error)?.message) + String((error as { cause?: Error })?.cause?.message),
    )
  );
}

/** The message an API put in its error body, or the start of the text. */
function apiMessage(body: unknown, text: string): string {
  const b = body as { error?: unknown; message?: unknown } | null;
  if (typeof b?.error === "string") return b.error;
  const nested = (b?.error as { message?: unknown } | null | undefined)?.message;
  if (typeof nested === "string") return nested;
  if (typeof b?.message === "string") return b.message;
  return text.slice(0, 500) || "failed";
}

function defaultErrorFor(a: HttpErrorAnswer): ProviderApiError {
  return new ProviderApiError({
    providerId: a.providerId,
    statusCode: a.status,
    url: a.url,
    message: `${a.operation}: ${a.message}`,
    ...(a.retryAfterMs !== undefined ? { retryAfterMs: a.retryAfterMs } : {}),
  });
}

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

/** An async iterable of chunks as a fetch request body (pulled as the connection takes them). */
function streamBody(source: AsyncIterable<Uint8Array>): RequestInit["body"] {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return?.().catch(() => {});
    },
  }) as unknown as RequestInit["body"];
}

/** The token of an attempt (a function is asked each time); empty is refused without a request. */
async function tokenOf(providerId: string, source: TokenSource): Promise<string> {
  const t = typeof source === "function" ? await source() : source;
  if (!t) throw new ProviderApiError({ providerId, isRetryable: false, message: "the API token is empty" });
  return t;
}

/**
 * The one HTTP client of the providers: global fetch, header auth (the token read per attempt, never in an
 * error), typed errors (ProviderApiError with status, URL without query, Retry-After, isRetryable), retries of
 * idempotent calls through `withRetry` (capped backoff, Retry-After honoured, sleeps ended by the signal),
 * JSON helpers, streamed bodies both ways.
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { providerId } = options;
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchFn = options.fetch ?? globalThis.fetch;
  const policy = options.retry ?? DEFAULT_RETRY;
  const auth = options.auth;
  const authHeader = (auth?.header ?? "authorization").toLowerCase();
  const scheme = auth?.scheme ?? (authHeader === "authorization" ? "Bearer" : "");

  async function attempt(call: HttpCall, body: RequestInit["body"] | undefined, duplex: boolean) {
    const url = `${baseUrl}${call.path}`;
    const shownUrl = url.split("?")[0]!;
    const cancelled = (cause: unknown) => new CancelledError({ operation: call.operation }, { cause });
    const failed = (message: string, retryable: boolean, cause: unknown) =>
      new ProviderApiError(
        { providerId, url: shownUrl, message: `${call.operation}: ${message}`, isRetryable: retryable },
        { cause },
      );
    await call.beforeAttempt?.(call.signal);
    const token = auth ? await tokenOf(providerId, auth.token) : undefined;
    const headers: Record<string, string> = { ...options.headers, ...call.headers };
    if (token !== undefined) headers[authHeader] = scheme ? `${scheme} ${token}` : token;
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
      headers["content-type"] =
        call.contentType ?? (call.json !== undefined ? "application/json" : "application/octet-stream");
    const timeout = call.timeoutMs ? AbortSignal.timeout(call.timeoutMs) : undefined;
    const signals = [call.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    let res: Response;
    try {
      res = await fetchFn(url, {
        method: call.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        // A streamed request body (fetch needs it said).
        ...(duplex ? { duplex: "half" } : {}),
        ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      } as RequestInit);
    } catch (error) {
      if (call.signal?.aborted) throw cancelled(error);
      if (timeout?.aborted) throw failed("timed out", call.idempotent, error);
      const network = isNetworkError(error);
      // A call that is not idempotent may have taken effect: never advertise it as safe to repeat.
      throw failed(
        network ? "connection failed" : (error as Error).message,
        network && call.idempotent,
        error,
      );
    }
    const ok = res.ok || (call.okStatuses?.includes(res.status) ?? false);
    if (ok && !call.buffer) return res as HttpAnswer;
    if (ok) {
      try {
        return bufferedAnswer(res, await res.arrayBuffer());
      } catch (error) {
        if (call.signal?.aborted) throw cancelled(error);
        throw failed("the connection was cut in the middle of the answer", call.idempotent, error);
      }
    }
    let text = await res.text().catch(() => "");
    if (token && token.length >= 4) text = text.split(token).join("***");
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {}
    const answer: HttpErrorAnswer = {
      providerId,
      operation: call.operation,
      status: res.status,
      url: shownUrl,
      headers: res.headers,
      text,
      body: parsed,
      message: apiMessage(parsed, text),
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
    };
    throw (call.errorFor ?? options.errorFor ?? defaultErrorFor)(answer);
  }

  async function request(call: HttpCall): Promise<HttpAnswer> {
    if (call.signal?.aborted) throw new CancelledError({ operation: call.operation });
    let body: RequestInit["body"] | undefined;
    let streamed = false;
    if (call.json !== undefined) body = JSON.stringify(call.json);
    else if (typeof call.body === "string" || call.body instanceof Uint8Array)
      body = call.body as unknown as RequestInit["body"];
    else if (call.body) {
      body = streamBody(call.body);
      streamed = true;
    }
    const once = async () => {
      try {
        return await attempt(call, body, streamed);
      } catch (error) {
        call.onAttemptError?.(error);
        throw error;
      }
    };
    // A stream cannot be resent.
    if (streamed) return once();
    return withRetry(once, {
      policy,
      signal: call.signal,
      operation: call.operation,
      onRetry: (n, e) => options.onRetry?.(call.operation, n, e),
      isRetryable: call.shouldRetry ?? ((e) => call.idempotent && RunnerError.isInstance(e) && e.isRetryable),
    });
  }

  return {
    providerId,
    baseUrl,
    request,
    async json<T>(call: HttpCall, schema?: z.ZodType<T>): Promise<T> {
      const text = await (await request({ ...call, buffer: true })).text();
      let value: unknown;
      try {
        value = text ? JSON.parse(text) : undefined;
      } catch (error) {
        throw new ProviderApiError(
          { providerId, isRetryable: false, message: `${call.operation}: the answer is not JSON` },
          { cause: error },
        );
      }
      if (!schema) return value as T;
      const checked = schema.safeParse(value);
      if (checked.success) return checked.data;
      throw new ProviderApiError(
        {
          providerId,
          isRetryable: false,
          message: `${call.operation}: unexpected answer (${checked.error.issues
            .slice(0, 3)
            .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
            .join("; ")})`,
        },
        { cause: checked.error },
      );
    },
  };
}
