import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** `attachCommand` for a command id this session does not know (never started, or ended and forgotten). */
export class CommandNotFoundError extends RunnerError {
  readonly providerId: string;
  readonly commandId: string;

  constructor(
    args: { providerId: string; commandId: string; message?: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "command_not_found",
      args.message ?? `provider '${args.providerId}' has no command '${args.commandId}' in this session`,
      options,
    );
    this.name = "CommandNotFoundError";
    this.providerId = args.providerId;
    this.commandId = args.commandId;
  }

  static override isInstance(error: unknown): error is CommandNotFoundError {
    return hasCode(error, "command_not_found");
  }
}
