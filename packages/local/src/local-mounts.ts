import { randomBytes } from "node:crypto";
import { type EnvSource, InvalidDestinationConfigError, type RunnerMount } from "@roder/runner-contract";
import { mountOnHost, planRcloneMount, resolveBucketCredentials } from "@roder/runner-storage";
import { freeHostPort } from "./local-slirp.js";

/**
 * Mounts a bucket intent (s3, r2, gcs, azure_blob, box_storage) at `hostPath` with the storage package's
 * rclone plan: credentials from the env secret ref go to rclone's environment only. `unmount()` waits for
 * pending uploads, then unmounts.
 */
export async function mountBucket(args: {
  mount: RunnerMount;
  hostPath: string;
  env: EnvSource;
  signal?: AbortSignal;
}): Promise<{ unmount(): Promise<void> }> {
  const { mount } = args;
  const kind = mount.intent.kind;
  if (kind === "provider_native")
    throw new InvalidDestinationConfigError({
      providerId: "unix-local",
      message: "provider_native mounts are bind mounts, not buckets",
    });
  if (!mount.intent.credentials) {
    throw new InvalidDestinationConfigError({
      providerId: "unix-local",
      message: `mount '${mount.name}' needs intent.credentials (an env secret ref) for ${kind}`,
    });
  }
  const credentials = resolveBucketCredentials(kind, mount.intent.credentials, args.env);
  const plan = planRcloneMount({
    mount,
    credentials,
    mountPath: args.hostPath,
    ...(mount.read_only
      ? {}
      : { rcPort: await freeHostPort(), rcPassword: randomBytes(24).toString("base64url") }),
  });
  const mounted = await mountOnHost(plan, args.signal ? { signal: args.signal } : {});
  return { unmount: () => mounted.unmount() };
}
