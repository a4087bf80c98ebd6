import { CancelledError } from "./errors/cancelled-error.js";
import { ProviderApiError } from "./errors/provider-api-error.js";
import { RunnerError } from "./errors/runner-error.js";
import { noteRetry } from "./operation-context.js";

export interface RetryPolicy {
  /** Extra attempts after the first (default 4). */
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 4, baseDelayMs: 200, maxDelayMs: 10_000 };

/** Waits `ms`; an abort of `signal` ends the wait at once with CancelledError naming `operation`. */
export function sleep(ms: number, signal?: AbortSignal, operation = "retry wait"): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError({ operation }));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new CancelledError({ operation }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
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
    /** Names the call in the CancelledError of an aborted wait (default "retry wait"). */
    operation?: string;
    onRetry?: (n: number, error: unknown) => void;
    /** Which failures to retry (default: retryable RunnerErrors). */
    isRetryable?: (error: unknown) => boolean;
  },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      const retryable = opts.isRetryable
        ? opts.isRetryable(error)
        : RunnerError.isInstance(error) && error.isRetryable;
      if (!retryable || n >= opts.policy.maxRetries) throw error;
      // Aborted while a failure worth retrying came in: the caller asked to stop, not to hear of it.
      if (opts.signal?.aborted)
        throw new CancelledError({ operation: opts.operation ?? "retry wait" }, { cause: error });
      const backoff = Math.min(opts.policy.maxDelayMs, opts.policy.baseDelayMs * 2 ** n);
      const hinted = ProviderApiError.isInstance(error) ? error.retryAfterMs : undefined;
      const delay =
        hinted !== undefined ? Math.min(hinted, opts.policy.maxDelayMs * 6) : Math.random() * backoff;
      opts.onRetry?.(n + 1, error);
      noteRetry();
      await sleep(delay, opts.signal, opts.operation);
    }
  }
}
