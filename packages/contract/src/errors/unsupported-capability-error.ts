import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** The provider cannot do what was asked. `capability` names the `RunnerCapabilities` flag (e.g. `mounts.box_storage`). */
export class UnsupportedCapabilityError extends RunnerError {
  readonly providerId: string;
  readonly capability: string;

  constructor(
    args: { providerId: string; capability: string; message?: string },
    options?: RunnerErrorOptions,
  ) {
    super(
      "unsupported_capability",
      args.message ?? `provider '${args.providerId}' does not support ${args.capability}`,
      options,
    );
    this.name = "UnsupportedCapabilityError";
    this.providerId = args.providerId;
    this.capability = args.capability;
  }

  static override isInstance(error: unknown): error is UnsupportedCapabilityError {
    return hasCode(error, "unsupported_capability");
  }
}
