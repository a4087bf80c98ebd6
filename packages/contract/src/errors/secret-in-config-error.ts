import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A destination config that carries something secret-looking. The config is persisted with the thread. */
export class SecretInConfigError extends RunnerError {
  /** JSON paths of the offending keys (never their values). */
  readonly paths: readonly string[];

  constructor(args: { paths: readonly string[]; hint?: string }, options?: RunnerErrorOptions) {
    super(
      "secret_in_config",
      `destination config must not hold secrets (found at ${args.paths.join(", ")}): the config is persisted with the thread; ${
        args.hint ?? "use an env secret ref (RunnerSecretRef) instead"
      }`,
      options,
    );
    this.name = "SecretInConfigError";
    this.paths = args.paths;
  }

  static override isInstance(error: unknown): error is SecretInConfigError {
    return hasCode(error, "secret_in_config");
  }
}
