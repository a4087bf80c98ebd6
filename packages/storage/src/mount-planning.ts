import type {
  EnvSource,
  MountPlanEntry,
  RunnerDestination,
  RunnerMount,
  RunnerMountCapabilities,
} from "@roder/runner-contract";
import { credentialVariables } from "./credentials.js";
import {
  ALLOW_CREDENTIALS_IN_SANDBOX,
  allowsCredentialsInSandbox,
  CREDENTIALS_IN_SANDBOX_ALTERNATIVES,
  credentialsInSandboxSetting,
} from "./credentials-in-sandbox.js";

/** What every mount planner takes besides the destination. */
export interface MountPlanOptions {
  /** Named in reasons. */
  providerId: string;
  /** Where the credential variables are looked up for `unset_env` (default `process.env`). */
  env?: EnvSource;
  /** The provider's `capabilities().mounts`: a kind it lacks here is planned `unsupported`. */
  capabilities?: RunnerMountCapabilities;
}

type Base = Pick<MountPlanEntry, "name" | "kind" | "env" | "unset_env">;

const FUSE = ["rclone", "fusermount3", "/dev/fuse"];

/**
 * The steps every provider shares: the credential variables of each mount (and which are unset), a kind the
 * provider lacks, a bucket without credentials; `plan` decides the rest.
 */
function planEach(
  destination: RunnerDestination,
  o: MountPlanOptions,
  plan: (m: RunnerMount, base: Base) => MountPlanEntry,
): MountPlanEntry[] {
  const env = o.env ?? process.env;
  return destination.default_manifest.mounts.map((m) => {
    const kind = m.intent.kind;
    const vars =
      kind !== "provider_native" && m.intent.credentials
        ? credentialVariables(kind, m.intent.credentials)
        : [];
    const base: Base = { name: m.name, kind, env: vars, unset_env: vars.filter((v) => !env[v]) };
    const none = { requires: [], credentials_in_sandbox: false, strategy: "unsupported" as const };
    if (o.capabilities && !o.capabilities[kind])
      return { ...base, ...none, reason: `${o.providerId}: no ${kind} mounts here (capabilities().mounts)` };
    if (kind !== "provider_native" && !m.intent.credentials)
      return { ...base, ...none, reason: "a bucket mount needs intent.credentials (an env secret ref)" };
    return plan(m, base);
  });
}

/**
 * A runner on this host (the local provider): buckets through rclone on the host, outside the sandbox (the command
 * never sees the credential); `provider_native` a bind mount of a host directory.
 */
export function planHostMounts(destination: RunnerDestination, o: MountPlanOptions): MountPlanEntry[] {
  return planEach(destination, o, (m, base) =>
    m.intent.kind === "provider_native"
      ? { ...base, strategy: "bind", requires: ["root (mount --bind)"], credentials_in_sandbox: false }
      : { ...base, strategy: "fuse-on-host", requires: FUSE, credentials_in_sandbox: false },
  );
}

/**
 * A server's backend mounts everything (the HTTP provider): every bucket kind with the secret from the server's own
 * environment (the unix-local backend runs rclone on the server's host, outside the sandbox), volumes as the
 * backend has them.
 */
export function planServerMounts(destination: RunnerDestination, o: MountPlanOptions): MountPlanEntry[] {
  return planEach(destination, o, (m, base) => ({
    ...base,
    strategy: "native",
    requires: [],
    credentials_in_sandbox: false,
    reason:
      m.intent.kind === "provider_native"
        ? "the server's backend decides"
        : "mounted by the server's backend, which resolves the secret from the server's own environment (the unix-local backend: rclone on the server's host, outside the sandbox); the client never holds it",
  }));
}

/**
 * A cloud sandbox (Fly, E2B): buckets through rclone inside the sandbox at create, with the credentials there, only
 * where the destination config allows it (`allow_credentials_in_sandbox`, else `refused`); no volumes.
 */
export function planInSandboxMounts(destination: RunnerDestination, o: MountPlanOptions): MountPlanEntry[] {
  const allowed = credentialsInSandboxSetting(destination.config);
  const id = o.providerId;
  return planEach(destination, o, (m, base) => {
    if (m.intent.kind === "provider_native")
      return {
        ...base,
        strategy: "unsupported",
        requires: [],
        credentials_in_sandbox: false,
        reason: `${id}: volumes are not managed yet`,
      };
    if (!allowsCredentialsInSandbox(allowed, m.name))
      return {
        ...base,
        strategy: "refused",
        requires: FUSE,
        credentials_in_sandbox: false,
        reason: `${id}: rclone would mount the bucket inside the sandbox with its credentials there; refused unless the destination config says ${ALLOW_CREDENTIALS_IN_SANDBOX}: true (or lists '${m.name}'). Alternatives: ${CREDENTIALS_IN_SANDBOX_ALTERNATIVES.join("; ")}`,
      };
    return {
      ...base,
      strategy: "fuse-in-sandbox",
      requires: FUSE,
      credentials_in_sandbox: true,
      reason: `${id}: rclone mounts the bucket inside the sandbox at create; the image (template) needs rclone and fuse3, and the credentials live in the mount process's environment there`,
    };
  });
}
