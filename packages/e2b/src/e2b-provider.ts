import {
  CancelledError,
  type Credential,
  credential,
  DEFAULT_RETRY,
  type EnvSource,
  ProviderApiError,
  parseDestinationInput,
  type RemoteRunnerProviderOf,
  type RunnerCallOptions,
  type RunnerCapabilities,
  RunnerError,
  type RunnerSessionState,
  runnerCapabilities,
  type SecretResolver,
  secretEnvironment,
  withRetry,
} from "@roder/runner-contract";
import { planInSandboxMounts } from "@roder/runner-storage";
import { e2bKeyRefused, mapE2bError } from "./e2b-errors.js";
import { createE2bSession, type E2bProviderContext, resumeE2bSession } from "./e2b-lifecycle.js";
import { E2B_LIMITS } from "./e2b-limits.js";
import { type E2bConnection, type E2bModule, loadE2bSdk } from "./e2b-sdk.js";
import type { E2bSession } from "./e2b-session.js";
import { validateE2bDestination } from "./e2b-validate.js";

export interface E2bProviderSettings {
  /** The `e2b` module (injectable for tests and unusual runtimes); default `await import("e2b")`. */
  sdk?: E2bModule;
  /**
   * The E2B API key, for an app that holds one per tenant: a value, or a function asked before each SDK call
   * that reaches E2B's API (a key rotated in a secret store; it may cache on its own). Default `apiKeySecret`,
   * else the `apiKeyEnv` variable. Kept in memory only: never in a destination config, a session state or an
   * error. Never from config.
   */
  apiKey?: string | (() => string | Promise<string>);
  /**
   * The key from the secret resolver (`secrets`): the id of a secret whose `api_key` field is the E2B API key
   * (`apiKeySecret: "e2b"` asks `secrets({ id: "e2b" })` and reads `.api_key`; without a resolver, or when it has
   * no such field, `RODER_SECRET_E2B_API_KEY`). Asked at the first API call, kept in memory; a refused key (401)
   * is dropped and the call made once more with the secret asked again (a rotated key). Not with `apiKey`.
   */
  apiKeySecret?: string;
  /** Env variable of the API key when neither `apiKey` nor `apiKeySecret` is given (default `E2B_API_KEY`). */
  apiKeyEnv?: string;
  /** Control-plane URL (default the SDK's, or `E2B_API_URL`). */
  apiUrl?: string;
  /** Sandbox daemon URL for every sandbox (default per sandbox; `E2B_SANDBOX_URL`). */
  sandboxUrl?: string;
  domain?: string;
  env?: EnvSource;
  /** `roder_owner` metadata on every sandbox (for sweepers). Default `roder-runners`. */
  owner?: string;
  requestTimeoutMs?: number;
  /**
   * Retries of a create or resume refused with 429 (default 4): the contract's `withRetry` (capped exponential
   * backoff with jitter, cancelled by the call's signal). A 429 carrying `Retry-After` (E2B's API rate limiter)
   * is first waited out by the SDK itself, which honours the header.
   */
  rateLimitRetries?: number;
  /**
   * The E2B plan's maximum sandbox timeout in hours (default `RODER_E2B_PLAN_MAX_HOURS`, else 1: the base
   * plan; Pro allows 24). `ttl_seconds` over it is refused before anything is created.
   */
  planMaxTimeoutHours?: number;
  /**
   * Secrets from a store other than the environment (Vault, a secret manager): asked for the fields of each
   * secret ref a destination names (in-sandbox mount credentials, the artifact store's) at create, validate and
   * resume; the environment fills what it leaves out. Values stay in memory, never in state or errors.
   */
  secrets?: SecretResolver;
  /**
   * How often, at most, the sandbox's timeout is moved while the session is used (default ttl/4, at most 60 s;
   * never more than ttl/3).
   */
  keepAliveIntervalMs?: number;
}

// Buckets are mounted inside the sandbox with rclone + FUSE (the template needs rclone and fuse3).
const CAPABILITIES: RunnerCapabilities = runnerCapabilities({ mounts: { provider_native: false } });

/** The E2B API key of these settings: the `apiKey` option, the `apiKeySecret` through `secrets`, or `apiKeyEnv`. */
export function e2bCredential(settings: E2bProviderSettings): Credential {
  return credential({
    option: settings.apiKey,
    secret: settings.apiKeySecret,
    secretField: "api_key",
    secretOptionName: "apiKeySecret",
    resolver: settings.secrets,
    env: () => settings.env ?? process.env,
    envName: settings.apiKeyEnv ?? "E2B_API_KEY",
    providerId: "e2b",
    optionName: "apiKey",
    description: "the E2B API key",
  });
}

/**
 * Runs `call` with the SDK's connection options, the key asked for this call; a refused key from a function or
 * a secret (which may have rotated) is asked again and the call made once more: E2B did not process it.
 */
export async function withE2bKey<T, C extends { apiKey: string }>(
  key: Credential,
  options: () => Promise<C>,
  call: (options: C) => Promise<T>,
): Promise<T> {
  const version = key.version;
  try {
    return await call(await options());
  } catch (error) {
    if (e2bKeyRefused(error) && !RunnerError.isInstance(error) && key.refresh(version))
      return await call(await options());
    throw error;
  }
}

/** The E2B provider: its sessions are `E2bSession`s (with `startCommand`, `attachCommand` and `pause`). */
export type E2bRunnerProvider = RemoteRunnerProviderOf<E2bSession>;

export function createE2bProvider(settings: E2bProviderSettings = {}): E2bRunnerProvider {
  const envName = settings.apiKeyEnv ?? "E2B_API_KEY";
  // One key for every call of this provider: a secret's value is asked once, kept until E2B refuses it.
  const key = e2bCredential(settings);
  /** Where the key comes from, as errors name it (never the key). */
  const apiKeyEnv = key.route;
  // Secrets a resolver gives (mount credentials, the artifact store's) laid over the environment.
  const secretEnv = secretEnvironment(() => settings.env ?? process.env, settings.secrets);
  const env = secretEnv.env;
  const owner = settings.owner ?? "roder-runners";
  const sdk = async (): Promise<E2bModule> => settings.sdk ?? (await loadE2bSdk());
  /** The SDK's connection options for one call (the key asked now). */
  const conn = async (signal?: AbortSignal): Promise<E2bConnection> => {
    const apiKey = await key.get();
    const e = env();
    return {
      apiKey,
      ...((settings.apiUrl ?? e.E2B_API_URL) ? { apiUrl: settings.apiUrl ?? e.E2B_API_URL } : {}),
      ...((settings.sandboxUrl ?? e.E2B_SANDBOX_URL)
        ? { sandboxUrl: settings.sandboxUrl ?? e.E2B_SANDBOX_URL }
        : {}),
      ...((settings.domain ?? e.E2B_DOMAIN) ? { domain: settings.domain ?? e.E2B_DOMAIN } : {}),
      ...(settings.requestTimeoutMs ? { requestTimeoutMs: settings.requestTimeoutMs } : {}),
      ...(signal ? { signal } : {}),
    };
  };
  /** An SDK call with the connection options, once more after a refused key that may have rotated. */
  const withKey = <T>(call: (c: E2bConnection) => Promise<T>, signal?: AbortSignal) =>
    withE2bKey(key, () => conn(signal), call);
  const mapErr = (error: unknown, operation: string, sandboxId?: string, template?: string) =>
    mapE2bError(error, {
      operation,
      apiKeyEnv,
      ...(sandboxId ? { sandboxId } : {}),
      ...(template !== undefined ? { template } : {}),
    });
  /**
   * 429 (nothing was created) is retried with the contract's backoff; the wait, and an abort while a refused
   * attempt was in flight, end in CancelledError. A 429's Retry-After is waited out by the SDK itself (its errors
   * do not carry the header).
   */
  const rateLimited = (e: unknown) => ProviderApiError.isInstance(e) && e.statusCode === 429;
  const retryRateLimited = async <T>(operation: string, attempt: () => Promise<T>, signal?: AbortSignal) => {
    if (signal?.aborted) throw new CancelledError({ operation });
    return withRetry(attempt, {
      policy: { ...DEFAULT_RETRY, maxRetries: settings.rateLimitRetries ?? DEFAULT_RETRY.maxRetries },
      signal,
      operation,
      isRetryable: rateLimited,
    });
  };

  const ctx: E2bProviderContext = {
    env,
    prime: secretEnv.prime,
    owner,
    apiKeyEnv,
    planMaxTimeoutHours: settings.planMaxTimeoutHours,
    keepAliveIntervalMs: settings.keepAliveIntervalMs,
    sdk,
    withKey,
    mapErr,
    retryRateLimited,
  };

  return {
    id: "e2b",
    capabilities: () => CAPABILITIES,
    setupHint: () =>
      key.configured() ? null : `set ${envName} or pass apiKey or apiKeySecret (your E2B API key)`,
    limits: () => ({ ...E2B_LIMITS }),
    planMounts: (d) =>
      planInSandboxMounts(parseDestinationInput(d, "e2b"), {
        providerId: "e2b",
        env: env(),
        capabilities: CAPABILITIES.mounts,
      }),
    async validateDestination(destination) {
      await secretEnv.prime(destination);
      validateE2bDestination(destination, env(), settings.planMaxTimeoutHours);
    },
    async createSession(destination, options?: RunnerCallOptions) {
      await secretEnv.prime(destination);
      const { d, config } = validateE2bDestination(destination, env(), settings.planMaxTimeoutHours);
      return createE2bSession(ctx, d, config, config.template, options?.signal);
    },
    resumeSession: (state: RunnerSessionState, options?: RunnerCallOptions) =>
      resumeE2bSession(ctx, state, options),
  };
}

/** Default instance: API key from E2B_API_KEY. */
export const e2bProvider = createE2bProvider();
