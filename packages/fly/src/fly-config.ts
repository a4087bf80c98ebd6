import { assertNoSecretsInConfig, InvalidDestinationConfigError } from "@roder/runner-contract";
import { z } from "zod";

/** `destination.config` of the Fly provider. Persisted with the thread: the token comes from FLY_API_TOKEN. */
export const FlyDestinationConfigSchema = z
  .object({
    /** The Fly app the machines belong to (created beforehand: `fly apps create`). */
    app: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "a Fly app name: lowercase letters, digits and hyphens"),
    /** Image with a shell, coreutils (base64, realpath, timeout) and a long-running command. */
    image: z.string().min(1),
    region: z.string().min(2).optional(),
    guest: z
      .object({
        cpu_kind: z.enum(["shared", "performance"]).default("shared"),
        cpus: z.number().int().min(1).max(16).default(1),
        memory_mb: z.number().int().min(256).max(131072).default(1024),
      })
      .optional(),
    /** Command that keeps the machine running (the image's own by default). */
    cmd: z.array(z.string()).optional(),
    /** Workspace root inside the machine. */
    workspace_root: z.string().startsWith("/").default("/workspace"),
    /** Public URL of a port: `{app}` and `{port}` are replaced. The app needs a service for that internal port. */
    public_url_template: z.string().default("https://{app}.fly.dev"),
    /** Upper bound for create + start (ms). */
    create_timeout_ms: z.number().int().positive().default(180_000),
    /** Exec timeout for commands without `timeout_ms` (seconds). */
    default_exec_timeout_s: z.number().int().positive().default(600),
    /** Expiry tag written on each machine (for the sweeper), seconds from creation. */
    ttl_seconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600),
    artifacts: z.unknown().optional(),
  })
  .strict();
export type FlyDestinationConfig = z.infer<typeof FlyDestinationConfigSchema>;

export function parseFlyConfig(config: unknown): FlyDestinationConfig {
  assertNoSecretsInConfig(config, {
    hint: "the Fly token comes from the FLY_API_TOKEN environment variable",
  });
  const result = FlyDestinationConfigSchema.safeParse(config ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new InvalidDestinationConfigError({
      providerId: "fly",
      message: issues.map((i) => `${i.path || "(config)"}: ${i.message}`).join("; "),
      issues,
    });
  }
  return result.data;
}
