const marker = "roder.runner.error";
const symbol = Symbol.for(marker);

export type RunnerErrorCode =
  | "wire_decode"
  | "invalid_destination_config"
  | "missing_secret"
  | "invalid_secret"
  | "secret_in_config"
  | "path_outside_workspace"
  | "unsupported_capability"
  | "command_timeout"
  | "cancelled"
  | "provider_api"
  | "session_not_found"
  | "command_not_found"
  | "unknown_provider"
  | "invalid_mount_uri"
  | "invalid_request"
  | "missing_dependency"
  | (string & {});

export interface RunnerErrorOptions {
  cause?: unknown;
  isRetryable?: boolean;
}

/**
 * Base class of every error this project throws. `code` and `name` are stable; `isInstance` works across
 * duplicated installs of the package (a `Symbol.for` marker rather than `instanceof`).
 */
export class RunnerError extends Error {
  readonly code: RunnerErrorCode;
  readonly isRetryable: boolean;

  constructor(code: RunnerErrorCode, message: string, options: RunnerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, symbol, { value: true, enumerable: false });
    this.name = "RunnerError";
    this.code = code;
    this.isRetryable = options.isRetryable ?? false;
  }

  static isInstance(error: unknown): error is RunnerError {
    return typeof error === "object" && error !== null && (error as Record<symbol, unknown>)[symbol] === true;
  }

  /** A plain object for logs and wire errors: code, name, message and structured fields, never a cause chain. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, isRetryable: this.isRetryable };
  }
}

/** Builds a `static isInstance` that checks the base marker and the stable `code`. */
export function hasCode<T extends RunnerError>(error: unknown, code: RunnerErrorCode): error is T {
  return RunnerError.isInstance(error) && error.code === code;
}
