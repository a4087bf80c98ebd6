import { promises as fs, realpathSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  CancelledError,
  type Credential,
  confinePath,
  credential,
  DEFAULT_RETRY,
  type EnvSource,
  InvalidDestinationConfigError,
  ProviderApiError,
  parseDestinationInput,
  type RemoteRunnerProviderOf,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerDestinationInput,
  RunnerDestinationSchema,
  RunnerError,
  type RunnerMount,
  type RunnerSessionState,
  type SecretResolver,
  SessionNotFoundError,
  secretEnvironment,
  withRetry,
} from "@roder/runner-contract";
import {
  checkSandboxMounts,
  manifestSourceFiles,
  mountManifestInSandbox,
  parseArtifactTarget,
  planInSandboxMounts,
  type SandboxMountRef,
} from "@roder/runner-storage";
import { type E2bDestinationConfig, E2bDestinationConfigSchema, parseE2bConfig } from "./e2b-config.js";
import { e2bKeyRefused, mapE2bError } from "./e2b-errors.js";
import { E2B_LIMITS } from "./e2b-limits.js";
import { E2bSession } from "./e2b-session.js";

type E2bModule = typeof import("e2b");

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

/** Reads the plan's maximum timeout (hours) from settings or env, checked. */
function planMaxHours(settings: E2bProviderSettings, env: EnvSource): number {
  const raw = settings.planMaxTimeoutHours ?? env.RODER_E2B_PLAN_MAX_HOURS ?? 1;
  const h = Number(raw);
  if (!Number.isFinite(h) || h <= 0)
    throw new InvalidDestinationConfigError({
      providerId: "e2b",
      message: `the E2B plan's maximum timeout must be a positive number of hours (planMaxTimeoutHours / RODER_E2B_PLAN_MAX_HOURS), got '${String(raw)}'`,
    });
  return h;
}

/** `ttl_seconds` against the plan's documented maximum (E2B: 400 "Timeout cannot be greater than N hours"). */
function checkPlanLimits(config: E2bDestinationConfig, maxHours: number): void {
  if (config.ttl_seconds <= maxHours * 3600) return;
  const message = `ttl_seconds ${config.ttl_seconds} is over the E2B plan's maximum sandbox timeout of ${maxHours} hours (${maxHours * 3600} s): E2B refuses it ("Timeout cannot be greater than ${maxHours} hours"). Lower ttl_seconds, or set planMaxTimeoutHours / RODER_E2B_PLAN_MAX_HOURS to your plan's limit (Pro: 24)`;
  throw new InvalidDestinationConfigError({
    providerId: "e2b",
    message,
    issues: [{ path: "ttl_seconds", message }],
  });
}

const CAPABILITIES: RunnerCapabilities = {
  command_exec: true,
  file_read: true,
  file_write: true,
  port_preview: true,
  snapshots: true,
  cancellation: true,
  artifact_export: true,
  // Buckets are mounted inside the sandbox with rclone + FUSE (the template needs rclone and fuse3).
  mounts: { s3: true, gcs: true, r2: true, azure_blob: true, box_storage: true, provider_native: false },
};

/**
 * The official SDK. It ships no `exports` map, so an ESM import loads its CommonJS main, whose own `require`s
 * resolve from where that file was loaded. Node 20's ESM resolver has been seen to hand back the package's
 * symlinked path in a pnpm workspace (with stdin a pipe, after other workspace packages loaded), where those
 * `require`s cannot find the SDK's dependencies: then the SDK is loaded again by its real path.
 */
async function loadE2bSdk(): Promise<E2bModule> {
  try {
    return (await import("e2b")) as unknown as E2bModule;
  } catch (error) {
    let real: string;
    try {
      const url = import.meta.resolve("e2b");
      real = pathToFileURL(realpathSync(fileURLToPath(url))).href;
      if (real === url) throw error;
    } catch {
      throw error;
    }
    return (await import(real)) as unknown as E2bModule;
  }
}

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
  const conn = async (signal?: AbortSignal) => {
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
  const withKey = <T>(call: (c: Awaited<ReturnType<typeof conn>>) => Promise<T>, signal?: AbortSignal) =>
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

  const validate = (destination: RunnerDestinationInput) => {
    const d = parseDestinationInput(destination, "e2b");
    if (d.provider_id !== "e2b")
      throw new InvalidDestinationConfigError({
        providerId: "e2b",
        message: `destination is for provider '${d.provider_id}'`,
      });
    const config = parseE2bConfig(d.config);
    checkPlanLimits(config, planMaxHours(settings, env()));
    if (config.artifacts !== undefined) parseArtifactTarget("e2b", config.artifacts);
    checkSandboxMounts("e2b", d.default_manifest.mounts, config.workspace_root, env(), {
      allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
    });
    for (const e of d.default_manifest.entries)
      confinePath(e.target, { root: config.workspace_root, access: "write" });
    return { d, config };
  };

  const wrap = (
    sandbox: import("e2b").Sandbox,
    destinationId: string,
    config: ReturnType<typeof parseE2bConfig>,
    mounts: { mounts: RunnerMount[]; mounted: SandboxMountRef[] } = { mounts: [], mounted: [] },
  ) =>
    new E2bSession(sandbox, {
      destinationId,
      config,
      ...mounts,
      apiKeyEnv,
      env: env() as Record<string, string | undefined>,
      ttlMs: config.ttl_seconds * 1000,
      // Never less often than a third of the ttl, whatever the setting: the timeout must move before it passes.
      keepAliveIntervalMs: Math.min(
        settings.keepAliveIntervalMs ?? Math.min(config.ttl_seconds * 250, 60_000),
        config.ttl_seconds * 333,
      ),
      // The sandbox's own methods with the key of this call (the SDK's bound one may have rotated).
      extend: async (ms: number) => {
        await withKey((c) => sandbox.setTimeout(ms, c));
      },
      pause: async (signal?: AbortSignal) => {
        await withKey((c) => sandbox.pause(c), signal);
      },
      kill: async () => {
        try {
          await withKey((c) => sandbox.kill(c));
        } catch (error) {
          const mapped = mapErr(error, "kill sandbox", sandbox.sandboxId);
          if (!SessionNotFoundError.isInstance(mapped)) throw mapped;
        }
      },
      snapshot: async () => {
        const { Sandbox } = await sdk();
        try {
          const snap = await withKey((c) => Sandbox.createSnapshot(sandbox.sandboxId, c));
          return {
            provider_id: "e2b",
            snapshot_id: snap.snapshotId,
            metadata: {
              names: snap.names,
              source_sandbox_id: sandbox.sandboxId,
              created_at: new Date().toISOString(),
            },
          };
        } catch (error) {
          throw mapErr(error, "snapshot", sandbox.sandboxId);
        }
      },
    });

  async function create(
    d: ReturnType<typeof validate>["d"],
    config: ReturnType<typeof parseE2bConfig>,
    template: string,
    signal?: AbortSignal,
    /** What `template` names: a snapshot that is gone is not a bad destination. */
    source: "template" | "snapshot" = "template",
  ) {
    const { Sandbox } = await sdk();
    if (signal?.aborted) throw new CancelledError({ operation: "create session" });
    // Rate limits are retried with backoff (the request was refused, nothing was created); the rest is typed.
    const sandbox = await retryRateLimited(
      "create session",
      async () => {
        try {
          // The create request itself is not aborted: a sandbox the server made after the client hung up would
          // be left running with no one knowing its id. An abort is honoured as soon as the answer is in (below).
          return await withKey((c) =>
            Sandbox.create(template, {
              ...c,
              timeoutMs: config.ttl_seconds * 1000,
              metadata: {
                ...config.metadata,
                roder_owner: owner,
                roder_expires_at: new Date(Date.now() + config.ttl_seconds * 1000).toISOString(),
                roder_destination: d.id,
              },
            }),
          );
        } catch (error) {
          const mapped = mapErr(error, "create sandbox", undefined, template);
          if (source === "snapshot" && InvalidDestinationConfigError.isInstance(mapped))
            throw new RunnerError(
              "not_found",
              `resume session: snapshot '${template}' does not exist on E2B (deleted, or made by another team)`,
              { cause: error },
            );
          throw mapped;
        }
      },
      signal,
    );
    const session = wrap(sandbox, d.id, config);
    try {
      if (signal?.aborted) throw new CancelledError({ operation: "create session" });
      await sandbox.files.makeDir(config.workspace_root).catch(() => false);
      for (const e of d.default_manifest.entries) {
        const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
        for (const f of await manifestSourceFiles(e.source))
          await session.writeFile({
            path: f.rel ? `${target}/${f.rel}` : target,
            contents: new Uint8Array(await fs.readFile(f.abs)),
          });
        if (!e.writable)
          await session.runCommand({
            command_id: `protect-${Date.now()}`,
            program: "chmod",
            args: ["-R", "a-w", "--", target],
          });
      }
      session.info.mounts = [...d.default_manifest.mounts];
      session.info.mounted.push(
        ...(await mountManifestInSandbox(session, {
          providerId: "e2b",
          mounts: d.default_manifest.mounts,
          workspaceRoot: config.workspace_root,
          env: env(),
          allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
          ...(signal ? { signal } : {}),
        })),
      );
      if (signal?.aborted) throw new CancelledError({ operation: "create session" });
      return session;
    } catch (error) {
      // A failed or aborted create kills what it started.
      await session.close().catch(() => {});
      throw error;
    }
  }

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
      validate(destination);
    },
    async createSession(destination, options?: RunnerCallOptions) {
      await secretEnv.prime(destination);
      const { d, config } = validate(destination);
      return create(d, config, config.template, options?.signal);
    },
    async resumeSession(state: RunnerSessionState, options?: RunnerCallOptions) {
      const meta = state.metadata as {
        sandbox_id?: unknown;
        config?: unknown;
        mounts?: RunnerMount[];
        mounted?: SandboxMountRef[];
      } | null;
      if (state.provider_id !== "e2b" || typeof meta?.sandbox_id !== "string")
        throw new RunnerError("invalid_request", "not an e2b session state");
      const config = E2bDestinationConfigSchema.parse(meta.config);
      // Only ids are taken from the state: values come from the resolver or the environment, never the state.
      await secretEnv.prime(meta.config, meta.mounts);
      checkPlanLimits(config, planMaxHours(settings, env()));
      if (state.snapshot) {
        // A snapshot restores into a new sandbox (Sandbox.create(snapshotId)).
        // The workspace is in the snapshot; bucket mounts are not, and are made again.
        const d = RunnerDestinationSchema.parse({
          id: state.destination_id,
          provider_id: "e2b",
          config: meta.config,
          default_manifest: { entries: [], mounts: meta.mounts ?? [] },
        });
        return create(d, config, state.snapshot.snapshot_id, options?.signal, "snapshot");
      }
      const { Sandbox } = await sdk();
      const sandboxId = meta.sandbox_id;
      // connect() also resumes a paused sandbox. Its timeout is the session's idle time: without one, E2B
      // would give a resumed sandbox 300 s.
      const sandbox = await retryRateLimited(
        "resume session",
        async () => {
          try {
            return await withKey(
              (c) => Sandbox.connect(sandboxId, { ...c, timeoutMs: config.ttl_seconds * 1000 }),
              options?.signal,
            );
          } catch (error) {
            throw mapErr(error, "resume session", sandboxId);
          }
        },
        options?.signal,
      );
      return wrap(sandbox, state.destination_id, config, {
        mounts: meta.mounts ?? [],
        mounted: meta.mounted ?? [],
      });
    },
  };
}

/** Default instance: API key from E2B_API_KEY. */
export const e2bProvider = createE2bProvider();
