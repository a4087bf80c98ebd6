// STUB: signatures fixed; the implementation is being written.
import type { z } from "zod";
import type { RunnerSecretRef } from "./schemas.js";

/** Where secrets come from; defaults to `process.env`. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** The one prefix of every secret variable: `RODER_SECRET_<ID>_<FIELD>`. */
export const SECRET_ENV_PREFIX = "RODER_SECRET_";

/** `r2-readonly` + `access_key_id` → `RODER_SECRET_R2_READONLY_ACCESS_KEY_ID`. */
export declare function secretEnvName(secretId: string, field: string): string;

/**
 * Reads the fields of `schema` (a z.object whose keys are snake_case field names) from env variables named
 * by `secretEnvName(ref.id, field)`. Missing required fields → `MissingSecretError` naming every variable
 * expected; malformed → `InvalidSecretError`. Never prints a value.
 */
export declare function resolveSecret<S extends z.ZodObject>(
  ref: RunnerSecretRef,
  schema: S,
  env?: EnvSource,
): z.infer<S>;

/** Throws `SecretInConfigError` when a destination config holds secret-looking keys or values. */
export declare function assertNoSecretsInConfig(
  config: unknown,
  options?: { allowKeys?: readonly string[] },
): void;

/** Replaces every occurrence of each secret value in `text` with `***`. */
export declare function redactSecrets(text: string, secrets: Iterable<string>): string;
