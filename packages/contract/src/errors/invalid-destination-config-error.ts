import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A destination config that does not validate for its provider. */
export class InvalidDestinationConfigError extends RunnerError {
  readonly providerId: string;
  readonly issues: ReadonlyArray<{ path: string; message: string }>;

  constructor(
    args: { providerId: string; message: string; issues?: ReadonlyArray<{ path: string; message: string }> },
    options?: RunnerErrorOptions,
  ) {
    super(
      "invalid_destination_config",
      `invalid destination config for provider '${args.providerId}': ${args.message}`,
      options,
    );
    this.name = "InvalidDestinationConfigError";
    this.providerId = args.providerId;
    this.issues = args.issues ?? [];
  }

  static override isInstance(error: unknown): error is InvalidDestinationConfigError {
    return hasCode(error, "invalid_destination_config");
  }
}
