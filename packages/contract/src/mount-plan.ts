import { z } from "zod";
import { RunnerMountKindSchema } from "./schemas.js";

/**
 * How a provider will satisfy one mount of a manifest, decided before any sandbox exists
 * (`provider.planMounts(destination)`).
 */
export const MountPlanEntrySchema = z.object({
  name: z.string(),
  kind: RunnerMountKindSchema,
  /**
   * `bind`: a host directory bound in; `fuse-on-host`: a FUSE mount made outside the sandbox; `fuse-in-sandbox`:
   * a FUSE mount made inside it (the credentials there); `native`: the backend's own mount; `refused`: the
   * provider could mount it only inside the sandbox, with the credentials there, and the destination config does
   * not allow that (`allow_credentials_in_sandbox`), so create would fail with `CredentialsInSandboxError`
   * (`reason` names the key and the alternatives); `unsupported`: not on this provider (`reason` says why).
   */
  strategy: z.enum(["bind", "fuse-on-host", "fuse-in-sandbox", "native", "refused", "unsupported"]),
  /** Tools the runner needs. */
  requires: z.array(z.string()),
  /**
   * Env variables the credential reads, and which of them are not set in the provider's environment (some are
   * optional; a missing required one fails validateDestination with MissingSecretError).
   */
  env: z.array(z.string()),
  unset_env: z.array(z.string()),
  /** True when the credential ends up inside the sandbox (an in-sandbox FUSE mount process). */
  credentials_in_sandbox: z.boolean(),
  reason: z.string().optional(),
});
export type MountPlanEntry = z.infer<typeof MountPlanEntrySchema>;
