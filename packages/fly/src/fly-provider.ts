import {
  type Credential,
  credential,
  type EnvSource,
  ProviderApiError,
  parseDestinationInput,
  type RemoteRunnerProviderOf,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerSessionState,
  runnerCapabilities,
  type SecretResolver,
  secretEnvironment,
} from "@roder/runner-contract";
import { planInSandboxMounts } from "@roder/runner-storage";
import type { FlyAgentSession } from "./fly-agent-session.js";
import { FlyApi, type RetryPolicy } from "./fly-api.js";
import { createFlySession, type FlyProviderContext, validateFlyDestination } from "./fly-create.js";
import { flyLimitsFor } from "./fly-limits.js";
import { DEFAULT_FLY_RATE_LIMIT, type FlyRateLimit, sharedFlyRateLimiter } from "./fly-rate-limit.js";
import { resumeFlySession } from "./fly-resume.js";
import type { FlySession } from "./fly-session.js";

export interface FlyProviderSettings {
  /** Machines API base URL; default `FLY_API_URL`, else `https://api.machines.dev/v1`. */
  baseUrl?: string;
  /**
   * The Fly API token, for an app that holds one per tenant: a value, or a function asked before each API call
   * (a token rotated in a secret store; it may cache on its own). Default `tokenSecret`, else the `tokenEnv`
   * variable. Kept in memory only: never in a destination config, a session state or an error.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * The token from the secret resolver (`secrets`): the id of a secret whose `token` field is the Fly API token
   * (`tokenSecret: "fly-api"` asks `secrets({ id: "fly-api" })` and reads `.token`; without a resolver, or when it
   * has no such field, `RODER_SECRET_FLY_API_TOKEN`). Asked at the first API call, kept in memory; a 401 drops it
   * and the call is made once more with the secret asked again (a rotated token). Not with `token`.
   */
  tokenSecret?: string;
  /** Env variable holding the API token when neither `token` nor `tokenSecret` is given (default `FLY_API_TOKEN`). */
  tokenEnv?: string;
  fetch?: typeof globalThis.fetch;
  env?: EnvSource;
  /**
   * Secrets from a store other than the environment (Vault, a secret manager): asked for the fields of each
   * secret ref a destination names (in-sandbox mount credentials, the artifact store's) at create, validate and
   * resume; the environment fills what it leaves out. Values stay in memory, never in state or errors.
   */
  secrets?: SecretResolver;
  retry?: Partial<RetryPolicy>;
  /** Owner tag written on every machine (`roder_owner` metadata), for the sweeper. Default `roder-runners`. */
  owner?: string;
  onRetry?: (operation: string, attempt: number, error: unknown) => void;
  /**
   * Client-side pacing per machine and action, under Fly's documented 1 request/s (burst 3): default
   * `{ perSecond: 0.9, burst: 2 }`, shared by every provider instance of this process for the same API URL.
   * `false` turns it off (429s are still absorbed, honouring `Retry-After`).
   */
  rateLimit?: FlyRateLimit | false;
  /** Largest part of a file, and of each output stream, moved by one exec (default 4 MiB). */
  chunkBytes?: number;
  /**
   * Agent mode: the secret the agent's per-session token is derived from (HMAC of the app and a per-session nonce
   * kept in the state), so `resumeSession` in any process recovers the token and no state holds it. Default: the
   * `agentSecretEnv` variable, else the Fly API token itself (whoever holds it can already exec in the machine).
   */
  agentSecret?: string;
  /** Env variable holding the agent secret when `agentSecret` is not given (default `RODER_FLY_AGENT_SECRET`). */
  agentSecretEnv?: string;
}

// Buckets are mounted inside the machine with rclone + FUSE (the image needs rclone and fuse3).
const CAPABILITIES: RunnerCapabilities = runnerCapabilities({
  snapshots: false,
  mounts: { provider_native: false },
});

/** The Fly API token of these settings: the `token` option, the `tokenSecret` through `secrets`, or `tokenEnv`. */
export function flyCredential(settings: FlyProviderSettings = {}): Credential {
  return credential({
    option: settings.token,
    secret: settings.tokenSecret,
    secretField: "token",
    secretOptionName: "tokenSecret",
    resolver: settings.secrets,
    env: () => settings.env ?? process.env,
    envName: settings.tokenEnv ?? "FLY_API_TOKEN",
    providerId: "fly",
    description: "the Fly API token",
  });
}

/**
 * The Machines API client the provider uses (the token of `flyCredential`, retries), for tools such as the
 * sweeper. Clients given the same `credential` share its kept secret value.
 */
export function createFlyApi(
  settings: FlyProviderSettings = {},
  token: Credential = flyCredential(settings),
): FlyApi {
  const env = settings.env ?? process.env;
  const baseUrl = (settings.baseUrl ?? env.FLY_API_URL ?? "https://api.machines.dev/v1").replace(/\/+$/, "");
  return new FlyApi({
    baseUrl,
    credential: token,
    fetch: settings.fetch ?? globalThis.fetch,
    retry: { maxRetries: 5, baseDelayMs: 500, maxDelayMs: 15_000, ...settings.retry },
    onRetry: settings.onRetry,
    limiter:
      settings.rateLimit === false
        ? undefined
        : sharedFlyRateLimiter(baseUrl, settings.rateLimit ?? DEFAULT_FLY_RATE_LIMIT),
  });
}

/** The Fly provider: its sessions are `FlySession`s (exec mode) or `FlyAgentSession`s (agent mode), both with `pause`. */
export type FlyRunnerProvider = RemoteRunnerProviderOf<FlySession | FlyAgentSession>;

export function createFlyProvider(settings: FlyProviderSettings = {}): FlyRunnerProvider {
  // Secrets a resolver gives (mount credentials, the artifact store's) laid over the environment.
  const secretEnv = secretEnvironment(() => settings.env ?? process.env, settings.secrets);
  const env = secretEnv.env;
  const tokenEnv = settings.tokenEnv ?? "FLY_API_TOKEN";
  const owner = settings.owner ?? "roder-runners";
  // One credential for every API client of this provider: a secret's value is asked once, not per session.
  const token = flyCredential(settings);
  const api = () => createFlyApi(settings, token);
  const agentSecretEnv = settings.agentSecretEnv ?? "RODER_FLY_AGENT_SECRET";
  /** The agent token's secret: `agentSecret`, its variable, else the API token by whatever route it comes. */
  const agentSecret = async (): Promise<string> => {
    const secret = settings.agentSecret ?? env()[agentSecretEnv];
    if (secret) return secret;
    if (!token.configured())
      throw new ProviderApiError({
        providerId: "fly",
        isRetryable: false,
        message: `agent mode needs a secret to derive the agent's token: set ${agentSecretEnv} or ${tokenEnv}, or pass agentSecret, token or tokenSecret`,
      });
    return token.get();
  };
  const tuning = { chunkBytes: settings.chunkBytes ?? 4 * 1024 * 1024 };
  if (!Number.isInteger(tuning.chunkBytes) || tuning.chunkBytes < 1024)
    throw new RangeError("fly: chunkBytes must be a whole number of bytes, at least 1024");

  const ctx: FlyProviderContext = {
    settings,
    env,
    prime: secretEnv.prime,
    api,
    owner,
    tuning,
    agentSecret,
  };

  return {
    id: "fly",
    capabilities: () => CAPABILITIES,
    setupHint: () =>
      token.configured()
        ? null
        : `set ${tokenEnv} or pass token or tokenSecret (a Fly API token: fly tokens create deploy -a <app>)`,
    limits: flyLimitsFor,
    planMounts: (d) =>
      planInSandboxMounts(parseDestinationInput(d, "fly"), {
        providerId: "fly",
        env: env(),
        capabilities: CAPABILITIES.mounts,
      }),
    async validateDestination(destination) {
      await secretEnv.prime(destination);
      validateFlyDestination(destination, env());
    },
    async createSession(destination, options?: RunnerCallOptions) {
      await secretEnv.prime(destination);
      const { d, config } = validateFlyDestination(destination, env());
      return createFlySession(ctx, d, config, options);
    },
    resumeSession: (state: RunnerSessionState, options?: RunnerCallOptions) =>
      resumeFlySession(ctx, state, options),
  };
}

/** Default instance: token from FLY_API_TOKEN, API at FLY_API_URL or api.machines.dev. */
export const flyProvider = createFlyProvider();
