import { parseProviderConfig } from "@roder/runner-contract";
import { z } from "zod";

/** `destination.config` of the HTTP provider. Persisted with the thread: no token here. */
export const HttpDestinationConfigSchema = z
  .object({
    /** Server base URL (e.g. `https://runners.example.com/v1`); else the provider's setting or env. */
    base_url: z.string().url().optional(),
    /** Lifetime asked of the server (it closes the session after it) and expiry listed for sweepers. */
    ttl_seconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600),
    /** Config passed to the server's backend provider as the session's destination config. */
    backend_config: z.unknown().optional(),
    /** Modal-style cloud bucket mounts (secret by ref; the server resolves it from its own env). */
    mounts: z
      .array(
        z.object({
          kind: z.enum(["s3", "r2", "gcs"]),
          bucket: z.string(),
          path: z.string(),
          endpoint: z.string().url().optional(),
          key_prefix: z.string().optional(),
          read_only: z.boolean().default(true),
          secret: z.object({ id: z.string() }).optional(),
        }),
      )
      .optional(),
  })
  .strict();
export type HttpDestinationConfig = z.infer<typeof HttpDestinationConfigSchema>;

export function parseHttpConfig(
  providerId: string,
  config: unknown,
  tokenEnv: string,
): HttpDestinationConfig {
  return parseProviderConfig(HttpDestinationConfigSchema, config, providerId, {
    hint: `put the server token in the ${tokenEnv} environment variable instead`,
  });
}
