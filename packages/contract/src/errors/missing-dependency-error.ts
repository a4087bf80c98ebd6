import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** An optional package or system tool that is needed for this operation and not installed. */
export class MissingDependencyError extends RunnerError {
  readonly dependency: string;

  constructor(args: { dependency: string; purpose: string; install: string }, options?: RunnerErrorOptions) {
    super(
      "missing_dependency",
      `${args.purpose} needs '${args.dependency}', which is not installed: ${args.install}`,
      options,
    );
    this.name = "MissingDependencyError";
    this.dependency = args.dependency;
  }

  static override isInstance(error: unknown): error is MissingDependencyError {
    return hasCode(error, "missing_dependency");
  }
}
