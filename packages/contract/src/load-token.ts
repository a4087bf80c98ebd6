import { ProviderApiError } from "./errors/provider-api-error.js";
import type { TokenSource } from "./http-client.js";
import { type EnvSource, type SecretResolver, secretEnvName } from "./secrets.js";

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

export interface CredentialArgs extends Omit<LoadTokenArgs, "option" | "env"> {
  /** A value, or a function asked before each API call (it may cache on its own). */
  option?: TokenSource | undefined;
  env: () => EnvSource;
  /**
   * A secret ref id (`tokenSecret`): the credential is that secret's `secretField` field, from `resolver` (asked
   * once, kept until the API refuses it), else from `RODER_SECRET_<ID>_<FIELD>`.
   */
  secret?: string | undefined;
  secretField: string;
  /** The option naming the secret, as messages name it (`tokenSecret`). */
  secretOptionName: string;
  resolver?: SecretResolver | undefined;
}

/** A provider's API credential, from the option, a secret ref or the environment (in that order). */
export interface Credential {
  /** The value for one API call. Never cached but for a secret's resolved value. */
  get(): Promise<string>;
  /** Changes each time a kept value is dropped (read it before a call, hand it to `refresh` after a 401). */
  readonly version: number;
  /**
   * The API refused the value of `version` (401): a secret's kept value is dropped (once for all the calls that
   * used it). True when asking again may give another value (a function or a secret): then retry once.
   */
  refresh(version: number): boolean;
  /** Where it comes from, for messages: "the token option", "tokenSecret 'fly'", "FLY_API_TOKEN". */
  readonly route: string;
  /** Whether any route is set, without asking a function or a resolver (setup hints). */
  configured(): boolean;
}

/**
 * `loadToken` with two more routes: the option may be a function (asked per call), and `secret` names a secret
 * ref resolved through the provider's secret resolver. Failures are non-retryable ProviderApiErrors naming the
 * route (the ref, the option), never a value.
 */
export function credential(args: CredentialArgs): Credential {
  const what = args.description ?? `the ${args.providerId} API token`;
  const optionName = args.optionName ?? "token";
  const fail = (message: string, cause?: unknown) =>
    new ProviderApiError(
      { providerId: args.providerId, isRetryable: false, message: `${what}: ${message}` },
      cause === undefined ? undefined : { cause },
    );
  if (args.option !== undefined && args.secret !== undefined)
    throw new TypeError(`${args.providerId}: pass '${optionName}' or '${args.secretOptionName}', not both`);
  if (args.secret !== undefined && (typeof args.secret !== "string" || args.secret.trim() === ""))
    throw new TypeError(`${args.providerId}: '${args.secretOptionName}' must be a secret id`);
  const option = args.option;
  const secret = args.secret;
  const secretName = `${args.secretOptionName} '${secret}'`;
  let version = 0;
  let kept: Promise<string | undefined> | undefined;
  const resolve = async (): Promise<string | undefined> => {
    if (!args.resolver) return undefined;
    let fields: Readonly<Record<string, string | undefined>> | null | undefined;
    try {
      fields = await args.resolver({ id: secret! });
    } catch (error) {
      throw fail(`the secret resolver failed for ${secretName}`, error);
    }
    const value = fields && typeof fields === "object" ? fields[args.secretField] : undefined;
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  return {
    get version() {
      return version;
    },
    route:
      option !== undefined ? `the ${optionName} option` : secret !== undefined ? secretName : args.envName,
    configured: () => option !== undefined || secret !== undefined || !!args.env()[args.envName],
    async get() {
      if (typeof option === "function") {
        let value: unknown;
        try {
          value = await option();
        } catch (error) {
          throw fail(`the '${optionName}' function failed`, error);
        }
        if (typeof value !== "string" || value === "")
          throw fail(`the '${optionName}' function answered no value`);
        return value;
      }
      if (secret === undefined) return loadToken({ ...args, option, env: args.env() });
      kept ??= resolve();
      const p = kept;
      const value = await p.catch((error) => {
        if (kept === p) kept = undefined;
        throw error;
      });
      const fallback = secretEnvName(secret, args.secretField);
      const found = value ?? args.env()[fallback];
      if (found) return found;
      if (kept === p) kept = undefined;
      throw fail(
        `${secretName} has no '${args.secretField}' field${args.resolver ? " in the secret resolver's answer" : " (no secret resolver is set)"} and ${fallback} is not set`,
      );
    },
    refresh(v: number) {
      if (typeof option === "function") return true;
      if (secret === undefined) return false;
      if (v === version) {
        kept = undefined;
        version++;
      }
      return true;
    },
  };
}
