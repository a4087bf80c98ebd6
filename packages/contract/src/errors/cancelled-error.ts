import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** An operation stopped by an `AbortSignal` or by `cancelCommand`. */
export class CancelledError extends RunnerError {
  readonly operation: string;

  constructor(args: { operation: string; reason?: string }, options?: RunnerErrorOptions) {
    super("cancelled", `${args.operation} was cancelled${args.reason ? `: ${args.reason}` : ""}`, options);
    this.name = "CancelledError";
    this.operation = args.operation;
  }

  static override isInstance(error: unknown): error is CancelledError {
    return hasCode(error, "cancelled");
  }
}
