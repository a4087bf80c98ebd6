import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A `provider_id` that no registered provider answers to. */
export class UnknownProviderError extends RunnerError {
  readonly providerId: string;
  readonly known: readonly string[];

  constructor(args: { providerId: string; known: readonly string[] }, options?: RunnerErrorOptions) {
    super(
      "unknown_provider",
      `unknown runner provider '${args.providerId}'; known providers: ${args.known.length ? args.known.join(", ") : "(none)"}`,
      options,
    );
    this.name = "UnknownProviderError";
    this.providerId = args.providerId;
    this.known = args.known;
  }

  static override isInstance(error: unknown): error is UnknownProviderError {
    return hasCode(error, "unknown_provider");
  }
}
