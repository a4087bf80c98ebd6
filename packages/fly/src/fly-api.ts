import {
  type Credential,
  createHttpClient,
  type HttpClient,
  ProviderApiError,
  type RetryPolicy,
  SessionNotFoundError,
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

export interface FlyCallOptions {
  body?: unknown;
  idempotent: boolean;
  operation: string;
  signal?: AbortSignal | undefined;
  nonce?: string | undefined;
  machineId?: string;
  timeoutMs?: number;
  /** Retry a 408 inside this call (default true for idempotent calls; `wait` loops on its own deadline). */
  retry408?: boolean;
}

/**
 * The Machines REST API client, on the contract's HTTP client: bearer token (read per attempt, never logged),
 * typed errors carrying the API's `{"error": …}` message, a client-side rate limiter per machine and action (Fly
 * allows about 1 request/s per action per machine, burst 3), retries with capped exponential backoff that
 * honour `Retry-After`. Idempotent calls retry on 429, 408, 5xx and connection failures; others (create, exec)
 * only on 429, which means the request was not processed.
 */
export class FlyApi {
  private readonly client: HttpClient;

  constructor(
    private readonly opts: {
      baseUrl: string;
      /** The API token: read per attempt (a secret's value kept until a 401 drops it). */
      credential: Credential;
      fetch: typeof globalThis.fetch;
      retry: RetryPolicy;
      onRetry?: ((operation: string, attempt: number, error: unknown) => void) | undefined;
      limiter?: FlyRateLimiter | undefined;
    },
  ) {
    this.client = createHttpClient({
      providerId: "fly",
      baseUrl: opts.baseUrl,
      auth: { token: () => opts.credential.get() },
      fetch: opts.fetch,
      retry: opts.retry,
      onRetry: opts.onRetry,
      headers: { accept: "application/json" },
    });
  }

  /** 429s the API answered (absorbed by retries unless they ran out), for benchmarks and diagnostics. */
  rateLimited = 0;

  /**
   * One API call. A 401 with a token from a function or a secret resolver is retried once with the token asked
   * again (a rotated token is picked up; the secret's kept value is dropped): the request was not processed.
   */
  async call<T>(method: string, path: string, o: FlyCallOptions): Promise<T> {
    const credential = this.opts.credential;
    const version = credential.version;
    try {
      return await this.callOnce<T>(method, path, o);
    } catch (error) {
      if (ProviderApiError.isInstance(error) && error.statusCode === 401 && credential.refresh(version))
        return await this.callOnce<T>(method, path, o);
      throw error;
    }
  }

  private async callOnce<T>(method: string, path: string, o: FlyCallOptions): Promise<T> {
    const key = rateLimitKey(method, path);
    const limiter = this.opts.limiter;
    const value = await this.client.json<T>({
      method,
      path,
      operation: o.operation,
      idempotent: o.idempotent,
      // Serialised once, before the rate limiter: a request leaves as soon as its turn comes.
      ...(o.body !== undefined ? { json: o.body } : {}),
      ...(o.nonce ? { headers: { "fly-machine-lease-nonce": o.nonce } } : {}),
      signal: o.signal,
      timeoutMs: o.timeoutMs,
      ...(limiter ? { beforeAttempt: (signal) => limiter.acquire(key, signal) } : {}),
      onAttemptError: (error) => {
        if (ProviderApiError.isInstance(error) && error.statusCode === 429) {
          this.rateLimited += 1;
          limiter?.penalize(key, error.retryAfterMs ?? 1000);
        }
      },
      // Non-idempotent calls (create, exec) are retried only on 429: the request was not processed.
      shouldRetry: (error) =>
        ProviderApiError.isInstance(error) &&
        error.isRetryable &&
        (o.idempotent || error.statusCode === 429) &&
        !(error.statusCode === 408 && o.retry408 === false),
      errorFor: (a) => {
        if (a.status === 404 && o.machineId)
          return new SessionNotFoundError({
            providerId: "fly",
            sessionId: o.machineId,
            message: `${o.operation}: machine ${o.machineId} not found`,
          });
        const hint = a.status === 401 ? ` (check ${this.opts.credential.route})` : "";
        return new ProviderApiError({
          providerId: "fly",
          statusCode: a.status,
          url: a.url,
          message: `${o.operation}: ${a.message}${hint}`,
          ...(a.retryAfterMs !== undefined ? { retryAfterMs: a.retryAfterMs } : {}),
        });
      },
    });
    return (value ?? {}) as T;
  }
}
