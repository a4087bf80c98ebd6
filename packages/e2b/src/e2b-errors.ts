import {
  CancelledError,
  CommandTimeoutError,
  ProviderApiError,
  RunnerError,
  SessionNotFoundError,
} from "@roder/runner-contract";

/** Maps the SDK's errors (by name: the SDK's classes may come from another copy) to the contract's. */
export function mapE2bError(
  error: unknown,
  ctx: { operation: string; sandboxId?: string; apiKeyEnv: string },
): unknown {
  if (RunnerError.isInstance(error)) return error;
  const e = error as Error & { name?: string; code?: unknown; status?: number };
  const name = e?.name ?? "";
  const msg = String(e?.message ?? error);
  if (name === "AuthenticationError" || /invalid api key|unauthori[sz]ed/i.test(msg)) {
    return new ProviderApiError(
      {
        providerId: "e2b",
        statusCode: 401,
        isRetryable: false,
        message: `${ctx.operation}: E2B refused the API key (set ${ctx.apiKeyEnv})`,
      },
      { cause: error },
    );
  }
  if (name === "FileNotFoundError")
    return new RunnerError("not_found", `${ctx.operation}: ${msg}`, { cause: error });
  if (/\[unavailable\]|sandbox was killed/i.test(msg)) {
    return new SessionNotFoundError(
      {
        providerId: "e2b",
        sessionId: ctx.sandboxId ?? "?",
        message: `${ctx.operation}: sandbox ${ctx.sandboxId ?? ""} is gone (killed or timed out)`,
      },
      { cause: error },
    );
  }
  if (
    name === "SandboxNotFoundError" ||
    name === "NotFoundError" ||
    /not found|not running anymore/i.test(msg)
  ) {
    if (name === "FileNotFoundError")
      return new RunnerError("not_found", `${ctx.operation}: ${msg}`, { cause: error });
    return new SessionNotFoundError(
      {
        providerId: "e2b",
        sessionId: ctx.sandboxId ?? "?",
        message: `${ctx.operation}: sandbox ${ctx.sandboxId ?? ""} not found`,
      },
      { cause: error },
    );
  }
  if (name === "RateLimitError" || /rate limit/i.test(msg))
    return new ProviderApiError(
      {
        providerId: "e2b",
        statusCode: 429,
        isRetryable: true,
        message: `${ctx.operation}: rate limited by E2B`,
      },
      { cause: error },
    );
  if (name === "TimeoutError")
    return new CommandTimeoutError({ timeoutMs: 0, operation: ctx.operation }, { cause: error });
  if (name === "AbortError") return new CancelledError({ operation: ctx.operation }, { cause: error });
  return new ProviderApiError(
    { providerId: "e2b", message: `${ctx.operation}: ${msg.replace(/e2b_[A-Za-z0-9]+/g, "e2b_***")}` },
    { cause: error },
  );
}
