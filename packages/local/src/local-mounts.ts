import type { EnvSource, RunnerMount } from "@roder/runner-contract";
import { UnsupportedCapabilityError } from "@roder/runner-contract";

/**
 * Mounts a bucket intent (s3, r2, gcs, azure_blob, box_storage) at `hostPath` with the storage package's
 * rclone plan. Returns the unmount that drains pending uploads first.
 */
export async function mountBucket(args: {
  mount: RunnerMount;
  hostPath: string;
  env: EnvSource;
  signal?: AbortSignal;
}): Promise<{ unmount(): Promise<void> }> {
  throw new UnsupportedCapabilityError({
    providerId: "unix-local",
    capability: `mounts.${args.mount.intent.kind}`,
    message: `unix-local cannot mount ${args.mount.intent.kind} buckets yet`,
  });
}
