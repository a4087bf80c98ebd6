import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** An operation that ran past its deadline. For commands, providers usually return a result with `exit_code: null` instead. */
export class CommandTimeoutError extends RunnerError {
  readonly timeoutMs: number;
  readonly commandId: string | undefined;

  constructor(
    args: { timeoutMs: number; commandId?: string; operation?: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "command_timeout",
      `${args.operation ?? (args.commandId ? `command '${args.commandId}'` : "operation")} timed out after ${args.timeoutMs} ms`,
      options,
    );
    this.name = "CommandTimeoutError";
    this.timeoutMs = args.timeoutMs;
    this.commandId = args.commandId;
  }

  static override isInstance(error: unknown): error is CommandTimeoutError {
    return hasCode(error, "command_timeout");
  }
}
