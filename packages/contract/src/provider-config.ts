import type { z } from "zod";
import { InvalidDestinationConfigError } from "./errors/index.js";
import { assertNoSecretsInConfig } from "./secrets.js";

export interface ProviderConfigOptions {
  /** Keys whose names mention credentials but hold none (a switch such as `allow_credentials_in_sandbox`). */
  allowKeys?: readonly string[];
  /** Where the credential goes instead, for the error of a config that holds one. */
  hint?: string;
}

/**
 * A provider's `destination.config`, parsed the one way every provider parses it: a config holding a secret is
 * refused first (`SecretInConfigError`, naming the key), then `schema` decides (absent = `{}`). A config that
 * does not validate is an `InvalidDestinationConfigError` naming the provider and each bad field with zod's
 * words, which say what was expected, never the value given.
 */
export function parseProviderConfig<S extends z.ZodType>(
  schema: S,
  input: unknown,
  providerId: string,
  options: ProviderConfigOptions = {},
): z.output<S> {
  assertNoSecretsInConfig(input, options);
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  throw new InvalidDestinationConfigError({
    providerId,
    message: issues.map((i) => `${i.path || "(config)"}: ${i.message}`).join("; "),
    issues,
  });
}
