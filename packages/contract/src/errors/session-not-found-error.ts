import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A session id that does not exist (never created, closed, or expired). */
export class SessionNotFoundError extends RunnerError {
  readonly providerId: string;
  readonly sessionId: string;

  constructor(
    args: { providerId: string; sessionId: string; message?: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "session_not_found",
      args.message ?? `provider '${args.providerId}' has no session '${args.sessionId}'`,
      options,
    );
    this.name = "SessionNotFoundError";
    this.providerId = args.providerId;
    this.sessionId = args.sessionId;
  }

  static override isInstance(error: unknown): error is SessionNotFoundError {
    return hasCode(error, "session_not_found");
  }
}
