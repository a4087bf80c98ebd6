import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A secret that is set but malformed. Names the variables, never a value. */
export class InvalidSecretError extends RunnerError {
  readonly secretId: string;
  readonly variables: readonly string[];

  constructor(
    args: { secretId: string; variables: readonly string[]; reason: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "invalid_secret",
      `secret '${args.secretId}' is invalid (${args.variables.join(", ")}): ${args.reason}`,
      options,
    );
    this.name = "InvalidSecretError";
    this.secretId = args.secretId;
    this.variables = args.variables;
  }

  static override isInstance(error: unknown): error is InvalidSecretError {
    return hasCode(error, "invalid_secret");
  }
}
