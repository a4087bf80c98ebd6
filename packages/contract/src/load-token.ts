import { ProviderApiError } from "./errors/provider-api-error.js";
import type { EnvSource } from "./secrets.js";

export interface LoadTokenArgs {
  /** The value given as a factory option (wins over the environment). */
  option?: string | undefined;
  env: EnvSource;
  /** The environment variable read when `option` is not given (`FLY_API_TOKEN`). */
  envName: string;
  providerId: string;
  /** The option's name as the user writes it (default `token`; E2B's is `apiKey`). */
  optionName?: string;
  /** What the credential is, for the message (default "the <providerId> API token"). */
  description?: string;
}

/**
 * A provider's credential: the option, else the environment variable. Missing, the error names both routes
 * ("…: pass it with the 'token' option or set FLY_API_TOKEN"), never a value. Read per call: never cached.
 */
export function loadToken(args: LoadTokenArgs): string {
  const value = args.option ?? args.env[args.envName];
  if (value) return value;
  const what = args.description ?? `the ${args.providerId} API token`;
  throw new ProviderApiError({
    providerId: args.providerId,
    isRetryable: false,
    message: `${what} is missing: pass it with the '${args.optionName ?? "token"}' option or set ${args.envName}`,
  });
}

/** Where the credential comes from, as errors and hints name it: "the token option" or the variable's name. */
export function tokenRoute(
  args: Pick<LoadTokenArgs, "envName" | "optionName"> & { option?: unknown },
): string {
  return args.option !== undefined ? `the ${args.optionName ?? "token"} option` : args.envName;
}
