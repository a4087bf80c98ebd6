import { parseProviderConfig } from "@roder/runner-contract";
import { z } from "zod";

/** `destination.config` of the E2B provider. Persisted with the thread: the API key comes from E2B_API_KEY. */
export const E2bDestinationConfigSchema = z
  .object({
    /** Template (or snapshot) id or alias. */
    template: z.string().min(1).default("base"),
    /**
     * Idle time (seconds): the sandbox's E2B timeout, which the provider moves to now + ttl_seconds while the
     * session is used, so an idle session is gone ttl_seconds after its last use. At most the plan's maximum
     * timeout (checked before create: 1 h on E2B's base plan, 24 h on Pro).
     */
    ttl_seconds: z
      .number()
      .int()
      .min(1)
      .max(24 * 3600)
      .default(3600),
    workspace_root: z.string().startsWith("/").default("/home/user"),
    /** Extra sandbox metadata (strings). */
    metadata: z.record(z.string(), z.string()).optional(),
    artifacts: z.unknown().optional(),
    /**
     * In-sandbox bucket mounts (rclone in the sandbox) place their credentials inside the sandbox: refused unless
     * this says so — `true` for every mount, or the names of the mounts allowed (see @roder/runner-storage).
     */
    allow_credentials_in_sandbox: z.union([z.boolean(), z.array(z.string().min(1))]).optional(),
  })
  .strict();
export type E2bDestinationConfig = z.infer<typeof E2bDestinationConfigSchema>;

export function parseE2bConfig(config: unknown): E2bDestinationConfig {
  return parseProviderConfig(E2bDestinationConfigSchema, config, "e2b", {
    // A switch (true or mount names) whose name mentions credentials, not a credential.
    allowKeys: ["allow_credentials_in_sandbox"],
    hint: "the E2B API key comes from the E2B_API_KEY environment variable",
  });
}
