import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A secret that is not set in the environment. Names the variables expected, never a value. */
export class MissingSecretError extends RunnerError {
  readonly secretId: string;
  readonly variables: readonly string[];

  constructor(
    args: { secretId: string; variables: readonly string[]; message?: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "missing_secret",
      args.message ??
        `secret '${args.secretId}' is missing: set the environment variable${args.variables.length > 1 ? "s" : ""} ${args.variables.join(", ")}`,
      options,
    );
    this.name = "MissingSecretError";
    this.secretId = args.secretId;
    this.variables = args.variables;
  }

  static override isInstance(error: unknown): error is MissingSecretError {
    return hasCode(error, "missing_secret");
  }
}
