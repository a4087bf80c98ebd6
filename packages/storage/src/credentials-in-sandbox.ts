import { hasCode, RunnerError, type RunnerErrorOptions } from "@roder/runner-contract";

/**
 * The destination config key that allows an in-sandbox mount to place its credentials inside the sandbox:
 * `true` for every mount of the destination, or the names of the mounts allowed.
 */
export const ALLOW_CREDENTIALS_IN_SANDBOX = "allow_credentials_in_sandbox";

/** The value of `allow_credentials_in_sandbox` in a destination config. */
export type CredentialsInSandboxSetting = boolean | readonly string[] | undefined;

/** What a host can do instead of placing a bucket's credentials inside the sandbox. */
export const CREDENTIALS_IN_SANDBOX_ALTERNATIVES: readonly string[] = [
  "a provider-native mount, whose credentials stay outside the sandbox (the local runner mounts buckets on the host; the HTTP server mounts S3, R2 and GCS in its backend)",
  "exportArtifact instead of a read-write mount (the sandbox uploads to a signed URL; the credentials stay on the host)",
  "manifest entries or writeFile instead of a read-only mount",
];

/** True when the setting allows mount `name` to place its credentials in the sandbox. */
export function allowsCredentialsInSandbox(setting: CredentialsInSandboxSetting, name: string): boolean {
  return setting === true || (Array.isArray(setting) && setting.includes(name));
}

/** Reads `allow_credentials_in_sandbox` from a destination config (anything else counts as not allowed). */
export function credentialsInSandboxSetting(config: unknown): CredentialsInSandboxSetting {
  if (typeof config !== "object" || config === null) return undefined;
  const v = (config as Record<string, unknown>)[ALLOW_CREDENTIALS_IN_SANDBOX];
  if (v === true) return true;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  return undefined;
}

/**
 * An in-sandbox mount (rclone in the sandbox) would place its credentials inside the sandbox, where every
 * command can read them, and the destination did not allow it. Names the mount, the key that allows it and the
 * alternatives; never a credential.
 */
export class CredentialsInSandboxError extends RunnerError {
  readonly providerId: string;
  readonly mount: string;
  readonly alternatives: readonly string[];

  constructor(args: { providerId: string; mount: string }, options?: RunnerErrorOptions) {
    super(
      "credentials_in_sandbox",
      `${args.providerId}: mount '${args.mount}' runs rclone inside the sandbox, which places its credentials there (every command could read them); refused unless the destination config says ${ALLOW_CREDENTIALS_IN_SANDBOX}: true (or lists '${args.mount}'). Alternatives: ${CREDENTIALS_IN_SANDBOX_ALTERNATIVES.join("; ")}`,
      options,
    );
    this.name = "CredentialsInSandboxError";
    this.providerId = args.providerId;
    this.mount = args.mount;
    this.alternatives = CREDENTIALS_IN_SANDBOX_ALTERNATIVES;
  }

  static override isInstance(error: unknown): error is CredentialsInSandboxError {
    return hasCode(error, "credentials_in_sandbox");
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      providerId: this.providerId,
      mount: this.mount,
      alternatives: this.alternatives,
    };
  }
}
