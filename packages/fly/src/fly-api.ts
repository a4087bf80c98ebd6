import {
  CancelledError,
  ProviderApiError,
  type RetryPolicy,
  SessionNotFoundError,
  withRetry,
} from "@roder/runner-contract";
import { type FlyRateLimiter, rateLimitKey } from "./fly-rate-limit.js";

export type { RetryPolicy };

/** A Machine as the API returns it (the fields we read). */
export interface FlyMachine {
  id: string;
  name?: string;
  state: string;
  region?: string;
  instance_id?: string;
  config?: { metadata?: Record<string, string> } & Record<string, unknown>;
}

export interface ExecResult {
  exit_code?: number;
  exit_signal?: number;
  stdout?: string;
  stderr?: string;
}

function retryAfterMs(v: string | null): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v) * 1000;
  const d = Date.parse(v);
  return Number.isNaN(d) ? undefined : Math.max(0, d - Date.now());
}

/**
 * The Machines REST API client: bearer token (read per call, never logged), typed errors carrying the API's
 * `{"error": …}` message, a client-side rate limiter per machine and action (Fly allows about 1 request/s per
 * action per machine, burst 3), retries with capped exponential backoff that honour `Retry-After`.
 * Idempotent calls retry on 429, 408, 5xx and connection failures; others (create, exec) only on 429, which
 * means the request was not processed.
 */
export class FlyApi {
  constructor(
    private readonly opts: {
      baseUrl: string;
      token: () => string;
      fetch: typeof globalThis.fetch;
      retry: RetryPolicy;
      onRetry?: ((operation: string, attempt: number, error: unknown) => void) | undefined;
      limiter?: FlyRateLimiter | undefined;
    },
  ) {}

  /** 429s the API answered (absorbed by retries unless they ran out), for benchmarks and diagnostics. */
  rateLimited = 0;

  async call<T>(
    method: string,
    path: string,
    o: {
      body?: unknown;
      idempotent: boolean;
      operation: string;
      signal?: AbortSignal | undefined;
      nonce?: string | undefined;
      machineId?: string;
      timeoutMs?: number;
      /** Retry a 408 inside this call (default true for idempotent calls; `wait` loops on its own deadline). */
      retry408?: boolean;
    },
  ): Promise<T> {
    const url = `${this.opts.baseUrl}${path}`;
    const key = rateLimitKey(method, path);
    // Serialised once, before the rate limiter: a request leaves as soon as its turn comes (a large body
    // serialised after it would bunch requests up).
    const bodyText = o.body === undefined ? undefined : JSON.stringify(o.body);
    // Non-idempotent calls (create, exec) are retried only on 429: the request was not processed.
    return withRetry(
      async () => {
        await this.opts.limiter?.acquire(key, o.signal);
        try {
          return await this.once<T>(method, url, { ...o, bodyText });
        } catch (error) {
          if (ProviderApiError.isInstance(error) && error.statusCode === 429) {
            this.rateLimited += 1;
            this.opts.limiter?.penalize(key, error.retryAfterMs ?? 1000);
          }
          throw error;
        }
      },
      {
        policy: this.opts.retry,
        signal: o.signal,
        onRetry: (n, error) => this.opts.onRetry?.(o.operation, n, error),
        isRetryable: (error) =>
          ProviderApiError.isInstance(error) &&
          error.isRetryable &&
          (o.idempotent || error.statusCode === 429) &&
          !(error.statusCode === 408 && o.retry408 === false),
      },
    );
  }

  private async once<T>(
    method: string,
    url: string,
    o: {
      bodyText?: string | undefined;
      operation: string;
      signal?: AbortSignal | undefined;
      nonce?: string | undefined;
      machineId?: string;
      timeoutMs?: number;
    },
  ): Promise<T> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.opts.token()}`,
      accept: "application/json",
    };
    if (o.bodyText !== undefined) headers["content-type"] = "application/json";
    if (o.nonce) headers["fly-machine-lease-nonce"] = o.nonce;
    const signals = [o.signal, o.timeoutMs ? AbortSignal.timeout(o.timeoutMs) : undefined].filter(
      Boolean,
    ) as AbortSignal[];
    let res: Response;
    try {
      res = await this.opts.fetch(url, {
        method,
        headers,
        ...(o.bodyText !== undefined ? { body: o.bodyText } : {}),
        ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      });
    } catch (error) {
      if (o.signal?.aborted) throw new CancelledError({ operation: o.operation }, { cause: error });
      throw new ProviderApiError(
        {
          providerId: "fly",
          url,
          message: `${o.operation}: ${(error as Error).name === "TimeoutError" ? "timed out" : "connection failed"}`,
          isRetryable: true,
        },
        { cause: error },
      );
    }
    const text = await res.text().catch(() => "");
    if (res.ok) return (text ? JSON.parse(text) : {}) as T;
    let message = text.slice(0, 500);
    try {
      const body = JSON.parse(text) as { error?: unknown };
      if (typeof body.error === "string") message = body.error;
    } catch {}
    if (res.status === 404 && o.machineId)
      throw new SessionNotFoundError({
        providerId: "fly",
        sessionId: o.machineId,
        message: `${o.operation}: machine ${o.machineId} not found`,
      });
    const after = retryAfterMs(res.headers.get("retry-after"));
    throw new ProviderApiError({
      providerId: "fly",
      statusCode: res.status,
      url,
      message: `${o.operation}: ${message}${res.status === 401 ? " (check FLY_API_TOKEN)" : ""}`,
      ...(after !== undefined ? { retryAfterMs: after } : {}),
    });
  }
}
