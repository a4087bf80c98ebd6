import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A mount-intent URI that is malformed or does not match its kind. */
export class InvalidMountUriError extends RunnerError {
  readonly uri: string;
  readonly kind: string | undefined;

  constructor(args: { uri: string; kind?: string; reason: string }, options?: RunnerErrorOptions) {
    super(
      "invalid_mount_uri",
      `invalid ${args.kind ?? "mount"} URI ${JSON.stringify(args.uri)}: ${args.reason}`,
      options,
    );
    this.name = "InvalidMountUriError";
    this.uri = args.uri;
    this.kind = args.kind;
  }

  static override isInstance(error: unknown): error is InvalidMountUriError {
    return hasCode(error, "invalid_mount_uri");
  }
}
