import { CancelledError, ProviderApiError, RunnerError } from "@roder/runner-contract";

export interface RetryPolicy {
  /** Extra attempts after the first (default 4). */
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 4, baseDelayMs: 200, maxDelayMs: 10_000 };

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError({ operation: "retry wait" }));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new CancelledError({ operation: "retry wait" }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Network failures (reset, refused, socket closed) are retryable; aborts are not. */
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

/**
 * Runs `attempt` with capped exponential backoff and full jitter, honouring `Retry-After` of a retryable
 * ProviderApiError. Only for idempotent operations: the caller decides.
 */
export async function withRetry<T>(
  attempt: (n: number) => Promise<T>,
  opts: {
    policy: RetryPolicy;
    signal?: AbortSignal | undefined;
    onRetry?: (n: number, error: unknown) => void;
  },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      const retryable = (RunnerError.isInstance(error) && error.isRetryable) || isNetworkError(error);
      if (!retryable || n >= opts.policy.maxRetries || opts.signal?.aborted) throw error;
      const backoff = Math.min(opts.policy.maxDelayMs, opts.policy.baseDelayMs * 2 ** n);
      const hinted = ProviderApiError.isInstance(error) ? error.retryAfterMs : undefined;
      const delay =
        hinted !== undefined ? Math.min(hinted, opts.policy.maxDelayMs * 6) : Math.random() * backoff;
      opts.onRetry?.(n + 1, error);
      await sleep(delay, opts.signal);
    }
  }
}
