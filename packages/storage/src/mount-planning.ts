import type { EnvSource, RunnerDestination, RunnerMountKind } from "@roder/runner-contract";
import { credentialVariables } from "./credentials.js";
import {
  ALLOW_CREDENTIALS_IN_SANDBOX,
  allowsCredentialsInSandbox,
  CREDENTIALS_IN_SANDBOX_ALTERNATIVES,
  credentialsInSandboxSetting,
} from "./credentials-in-sandbox.js";

/** How a provider will satisfy one mount of a manifest, decided before any sandbox exists. */
export interface MountPlanEntry {
  name: string;
  kind: RunnerMountKind;
  /**
   * `refused`: the provider could mount it only inside the sandbox, with the credentials there, and the
   * destination config does not allow that (`allow_credentials_in_sandbox`); create would fail with
   * `CredentialsInSandboxError`. `reason` names the key and the alternatives.
   */
  strategy: "bind" | "fuse-on-host" | "fuse-in-sandbox" | "native" | "refused" | "unsupported";
  /** Tools the runner needs. */
  requires: string[];
  /** Env variables the credential reads, and which of them are not set in `env` (some are optional; a missing required one fails validateDestination with MissingSecretError). */
  env: string[];
  unset_env: string[];
  /** True when the credential ends up inside the sandbox (an in-sandbox FUSE mount process). */
  credentials_in_sandbox: boolean;
  reason?: string;
}

const FUSE = ["rclone", "fusermount3", "/dev/fuse"];

/**
 * Mount planning before create: for each mount of the destination's manifest, how `providerId` will satisfy it
 * (the table of DESIGN.md's "Mount intents", as implemented today) and what it needs, so a host can refuse a
 * destination before paying for a sandbox.
 */
export function planMountsFor(
  providerId: string,
  destination: RunnerDestination,
  opts: { env?: EnvSource } = {},
): MountPlanEntry[] {
  const env = opts.env ?? process.env;
  const allowed = credentialsInSandboxSetting(destination.config);
  return destination.default_manifest.mounts.map((m) => {
    const kind = m.intent.kind;
    const vars =
      kind !== "provider_native" && m.intent.credentials
        ? credentialVariables(kind, m.intent.credentials)
        : [];
    const base = { name: m.name, kind, env: vars, unset_env: vars.filter((v) => !env[v]) };
    if (kind === "provider_native") {
      if (providerId === "unix-local")
        return {
          ...base,
          strategy: "bind",
          requires: ["root (mount --bind)"],
          credentials_in_sandbox: false,
        };
      if (providerId === "http")
        return {
          ...base,
          strategy: "native",
          requires: [],
          credentials_in_sandbox: false,
          reason: "the server's backend decides",
        };
      return {
        ...base,
        strategy: "unsupported",
        requires: [],
        credentials_in_sandbox: false,
        reason: `${providerId}: volumes are not managed yet`,
      };
    }
    if (!m.intent.credentials)
      return {
        ...base,
        strategy: "unsupported",
        requires: [],
        credentials_in_sandbox: false,
        reason: "a bucket mount needs intent.credentials (an env secret ref)",
      };
    if (providerId === "unix-local") {
      // rclone runs on the host, outside the bubblewrap sandbox: the command never sees the credential.
      return { ...base, strategy: "fuse-on-host", requires: FUSE, credentials_in_sandbox: false };
    }
    if (providerId === "http") {
      // Every bucket kind (Box and Azure too) is mounted by the server's backend with the secret from the
      // server's environment: the unix-local backend runs rclone on the server's host, outside the sandbox.
      return {
        ...base,
        strategy: "native",
        requires: [],
        credentials_in_sandbox: false,
        reason:
          "mounted by the server's backend, which resolves the secret from the server's own environment (the unix-local backend: rclone on the server's host, outside the sandbox); the client never holds it",
      };
    }
    if ((providerId === "fly" || providerId === "e2b") && !allowsCredentialsInSandbox(allowed, m.name))
      return {
        ...base,
        strategy: "refused",
        requires: FUSE,
        credentials_in_sandbox: false,
        reason: `${providerId}: rclone would mount the bucket inside the sandbox with its credentials there; refused unless the destination config says ${ALLOW_CREDENTIALS_IN_SANDBOX}: true (or lists '${m.name}'). Alternatives: ${CREDENTIALS_IN_SANDBOX_ALTERNATIVES.join("; ")}`,
      };
    if (providerId === "fly" || providerId === "e2b")
      return {
        ...base,
        strategy: "fuse-in-sandbox",
        requires: FUSE,
        credentials_in_sandbox: true,
        reason: `${providerId}: rclone mounts the bucket inside the sandbox at create; the image (template) needs rclone and fuse3, and the credentials live in the mount process's environment there`,
      };
    return {
      ...base,
      strategy: "unsupported",
      requires: FUSE,
      credentials_in_sandbox: true,
      reason: `${providerId}: no bucket mounts for this provider`,
    };
  });
}
