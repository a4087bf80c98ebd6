import { assertNoSecretsInConfig, InvalidDestinationConfigError } from "@roder/runner-contract";
import { z } from "zod";

/** `destination.config` of the E2B provider. Persisted with the thread: the API key comes from E2B_API_KEY. */
export const E2bDestinationConfigSchema = z
  .object({
    /** Template (or snapshot) id or alias. */
    template: z.string().min(1).default("base"),
    /** Sandbox lifetime before E2B stops it (seconds); also written as `roder_expires_at`. */
    ttl_seconds: z
      .number()
      .int()
      .min(30)
      .max(24 * 3600)
      .default(3600),
    workspace_root: z.string().startsWith("/").default("/home/user"),
    /** Extra sandbox metadata (strings). */
    metadata: z.record(z.string(), z.string()).optional(),
    artifacts: z.unknown().optional(),
  })
  .strict();
export type E2bDestinationConfig = z.infer<typeof E2bDestinationConfigSchema>;

export function parseE2bConfig(config: unknown): E2bDestinationConfig {
  assertNoSecretsInConfig(config, {
    hint: "the E2B API key comes from the E2B_API_KEY environment variable",
  });
  const r = E2bDestinationConfigSchema.safeParse(config ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new InvalidDestinationConfigError({
      providerId: "e2b",
      message: issues.map((i) => `${i.path || "(config)"}: ${i.message}`).join("; "),
      issues,
    });
  }
  return r.data;
}
