import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A call to a provider's remote API failed. Never holds a token: `url` is stripped of query strings. */
export class ProviderApiError extends RunnerError {
  readonly providerId: string;
  readonly statusCode: number | undefined;
  readonly url: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    args: {
      providerId: string;
      message: string;
      statusCode?: number;
      url?: string;
      retryAfterMs?: number;
      isRetryable?: boolean;
    },
    options?: RunnerErrorOptions,
  ) {
    const status = args.statusCode === undefined ? "" : ` (HTTP ${args.statusCode})`;
    super("provider_api", `${args.providerId}: ${args.message}${status}`, {
      ...options,
      isRetryable: args.isRetryable ?? isRetryableStatus(args.statusCode),
    });
    this.name = "ProviderApiError";
    this.providerId = args.providerId;
    this.statusCode = args.statusCode;
    this.url = args.url?.split("?")[0];
    this.retryAfterMs = args.retryAfterMs;
  }

  static override isInstance(error: unknown): error is ProviderApiError {
    return hasCode(error, "provider_api");
  }
}

/** 408, 409, 425, 429 and 5xx are worth retrying; undefined (network failure) too. */
export function isRetryableStatus(status: number | undefined): boolean {
  if (status === undefined) return true;
  return status === 408 || status === 409 || status === 425 || status === 429 || status >= 500;
}
