import { RunnerError, withRetry as retryLoop } from "@roder/runner-contract";

export { DEFAULT_RETRY, type RetryPolicy, sleep } from "@roder/runner-contract";

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

/** The contract's retry loop, also retrying network failures (resets, refused connections). */
export const withRetry: typeof retryLoop = (attempt, opts) =>
  retryLoop(attempt, {
    ...opts,
    isRetryable: (e) => (RunnerError.isInstance(e) && e.isRetryable) || isNetworkError(e),
  });
