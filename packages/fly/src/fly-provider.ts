import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { posix } from "node:path";
import {
  CancelledError,
  type Credential,
  confinePath,
  credential,
  type EnvSource,
  InvalidDestinationConfigError,
  ProviderApiError,
  parseDestinationInput,
  type RemoteRunnerProviderOf,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerDestinationInput,
  RunnerError,
  type RunnerSessionState,
  type SecretResolver,
  SessionNotFoundError,
  secretEnvironment,
} from "@roder/runner-contract";
import {
  checkSandboxMounts,
  manifestSourceFiles,
  mountManifestInSandbox,
  planInSandboxMounts,
  type SandboxMountRef,
} from "@roder/runner-storage";
import {
  AGENT_TOKEN_ENV,
  agentClient,
  agentDestination,
  agentInit,
  agentServices,
  agentState,
  agentToken,
  waitAgent,
} from "./fly-agent.js";
import { FlyAgentSession } from "./fly-agent-session.js";
import { FlyApi, type FlyMachine, type RetryPolicy } from "./fly-api.js";
import {
  type FlyDestinationConfig,
  FlyDestinationConfigSchema,
  flyMode,
  parseFlyConfig,
} from "./fly-config.js";
import { flyLimitsFor } from "./fly-limits.js";
import { DEFAULT_FLY_RATE_LIMIT, type FlyRateLimit, sharedFlyRateLimiter } from "./fly-rate-limit.js";
import { CHECK_MARK, MARK } from "./fly-scripts.js";
import { destroyMachine, FlySession } from "./fly-session.js";
import { createVolume, deleteVolume, type FlyVolume, volumeMounts } from "./fly-volumes.js";
import { FlyWorkspaceLostError } from "./fly-workspace-lost-error.js";

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

const CAPABILITIES: RunnerCapabilities = {
  command_exec: true,
  file_read: true,
  file_write: true,
  port_preview: true,
  snapshots: false,
  cancellation: true,
  artifact_export: true,
  // Buckets are mounted inside the machine with rclone + FUSE (the image needs rclone and fuse3).
  mounts: { s3: true, gcs: true, r2: true, azure_blob: true, box_storage: true, provider_native: false },
};

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

  const validate = (destination: RunnerDestinationInput) => {
    const d = parseDestinationInput(destination, "fly");
    if (d.provider_id !== "fly")
      throw new InvalidDestinationConfigError({
        providerId: "fly",
        message: `destination is for provider '${d.provider_id}'`,
      });
    const config = parseFlyConfig(d.config);
    if (flyMode(config) === "agent" && config.cmd)
      throw new InvalidDestinationConfigError({
        providerId: "fly",
        message:
          "cmd: in agent mode the machine runs the agent (agent_command serve …); set mode 'exec' to run cmd",
      });
    checkSandboxMounts("fly", d.default_manifest.mounts, config.workspace_root, env(), {
      allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
    });
    for (const e of d.default_manifest.entries)
      confinePath(e.target, { root: config.workspace_root, access: "write" });
    return { d, config };
  };

  /**
   * Waits until the machine is started, within `deadline` (ms since epoch) exactly: each `wait` asks for at most
   * the time left (whole seconds, 1–60, Fly's bounds), its 408 is not retried inside the API client, and retries
   * of other failures stop at the deadline too.
   */
  async function waitStarted(
    a: FlyApi,
    config: FlyDestinationConfig,
    id: string,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const timedOut = () =>
      new RunnerError("create_timeout", `fly machine ${id} did not start within the create timeout`);
    const overall = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    const bounded = signal ? AbortSignal.any([signal, overall]) : overall;
    for (;;) {
      if (signal?.aborted) throw new CancelledError({ operation: "create session" });
      const leftMs = deadline - Date.now();
      if (leftMs <= 0 || overall.aborted) throw timedOut();
      const waitS = Math.max(1, Math.min(60, Math.floor(leftMs / 1000)));
      try {
        await a.call("GET", `/apps/${config.app}/machines/${id}/wait?state=started&timeout=${waitS}`, {
          idempotent: true,
          retry408: false,
          operation: "wait for machine",
          signal: bounded,
          machineId: id,
          timeoutMs: (waitS + 10) * 1000,
        });
        return;
      } catch (error) {
        if (overall.aborted && !signal?.aborted) throw timedOut();
        if (ProviderApiError.isInstance(error) && error.statusCode === 408) continue;
        if (CancelledError.isInstance(error)) throw error;
        const m = await a
          .call<FlyMachine>("GET", `/apps/${config.app}/machines/${id}`, {
            idempotent: true,
            operation: "get machine",
            signal: bounded,
            machineId: id,
          })
          .catch(() => null);
        if (m && (m.state === "failed" || m.state === "launch_failed" || m.state === "destroyed"))
          throw new ProviderApiError(
            {
              providerId: "fly",
              isRetryable: false,
              message: `machine ${id} failed to start (state ${m.state})`,
            },
            { cause: error },
          );
        throw error;
      }
    }
  }

  /** The machine's state when it can no longer run the agent (stopped, failed, gone), else null. */
  async function machineDown(a: FlyApi, config: FlyDestinationConfig, id: string): Promise<string | null> {
    const m = await a
      .call<FlyMachine>("GET", `/apps/${config.app}/machines/${id}`, {
        idempotent: true,
        operation: "get machine",
        machineId: id,
      })
      .catch((error) => (SessionNotFoundError.isInstance(error) ? ({ state: "gone" } as FlyMachine) : null));
    return m && !["started", "starting", "created"].includes(m.state) ? `machine ${m.state}` : null;
  }

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
      validate(destination);
    },
    async createSession(destination, options?: RunnerCallOptions) {
      await secretEnv.prime(destination);
      const { d, config } = validate(destination);
      const mode = flyMode(config);
      const a = api();
      const files: Array<{ guest_path: string; raw_value: string }> = [];
      const entryFiles: Array<{ rel: string; abs: string }> = [];
      for (const e of d.default_manifest.entries) {
        const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
        for (const f of await manifestSourceFiles(e.source).catch((err) => {
          throw new InvalidDestinationConfigError(
            { providerId: "fly", message: `manifest entry source '${e.source}' cannot be read` },
            { cause: err },
          );
        })) {
          const guest = f.rel ? `${target}/${f.rel}` : target;
          if (mode === "agent")
            entryFiles.push({ rel: posix.relative(config.workspace_root, guest), abs: f.abs });
          else files.push({ guest_path: guest, raw_value: (await fs.readFile(f.abs)).toString("base64") });
        }
      }
      const nonce = mode === "agent" ? randomBytes(16).toString("hex") : undefined;
      // Derived before anything is created: a missing secret fails here.
      const agent = nonce ? agentToken(await agentSecret(), config.app, nonce) : undefined;
      if (options?.signal?.aborted) throw new CancelledError({ operation: "create session" });
      const now = Date.now();
      const volume: FlyVolume | undefined = config.volume
        ? await createVolume(a, config, options?.signal)
        : undefined;
      const body = {
        ...(config.region ? { region: config.region } : {}),
        config: {
          image: config.image,
          ...(config.guest ? { guest: config.guest } : {}),
          ...(agent
            ? {
                init: { cmd: agentInit(config) },
                env: { [AGENT_TOKEN_ENV]: agent },
                services: agentServices(config),
              }
            : config.cmd
              ? { init: { cmd: config.cmd } }
              : {}),
          metadata: {
            roder_owner: owner,
            roder_expires_at: new Date(now + config.ttl_seconds * 1000).toISOString(),
            roder_destination: d.id,
            ...(volume ? { roder_volume: volume.id } : {}),
          },
          restart: { policy: "no" },
          auto_destroy: false,
          ...(files.length ? { files } : {}),
          ...(volume ? { mounts: volumeMounts(config, volume.id) } : {}),
        },
      };
      // The create request itself is not aborted: a machine Fly made after the client hung up would be left
      // with no one knowing its id. An abort is honoured as soon as the answer is in (and destroys it).
      let machine: FlyMachine;
      try {
        machine = await a.call<FlyMachine>("POST", `/apps/${config.app}/machines`, {
          body,
          idempotent: false,
          operation: "create machine",
        });
      } catch (error) {
        if (volume) await deleteVolume(a, config.app, volume.id, undefined).catch(() => {});
        throw error;
      }
      const deadline = now + config.create_timeout_ms;
      try {
        await waitStarted(a, config, machine.id, deadline, options?.signal);
        if (mode === "agent") {
          await waitAgent({
            config,
            machineId: machine.id,
            token: agent!,
            fetch: settings.fetch ?? globalThis.fetch,
            deadline,
            signal: options?.signal,
            machineDown: () => machineDown(a, config, machine.id),
          });
          const inner = await agentClient({
            config,
            machineId: machine.id,
            token: agent!,
            fetch: settings.fetch ?? globalThis.fetch,
            onRetry: settings.onRetry,
          }).createSession(agentDestination(config, d.id), options);
          const session = new FlyAgentSession(a, inner, {
            machineId: machine.id,
            destinationId: d.id,
            config,
            env: env() as Record<string, string | undefined>,
            nonce: nonce!,
            volumeId: volume?.id,
            mounted: [],
          });
          try {
            for (const f of entryFiles)
              await session.writeFile(
                { path: f.rel || ".", contents: new Uint8Array(await fs.readFile(f.abs)) },
                options,
              );
            for (const e of d.default_manifest.entries.filter((x) => !x.writable)) {
              const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
              await session.runCommand(
                {
                  command_id: `protect-${randomBytes(4).toString("hex")}`,
                  program: "chmod",
                  args: ["-R", "a-w", "--", posix.relative(config.workspace_root, target) || "."],
                },
                options,
              );
            }
            session.info.mounted.push(
              ...(await mountManifestInSandbox(session, {
                providerId: "fly",
                mounts: d.default_manifest.mounts,
                workspaceRoot: session.root,
                env: env(),
                allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
                ...(options?.signal ? { signal: options.signal } : {}),
              })),
            );
            if (options?.signal?.aborted) throw new CancelledError({ operation: "create session" });
          } catch (error) {
            await inner.close().catch(() => {});
            throw error;
          }
          return session;
        }
        const marker = randomBytes(12).toString("hex");
        const session = new FlySession(a, {
          machineId: machine.id,
          destinationId: d.id,
          config,
          env: env() as Record<string, string | undefined>,
          mounted: [],
          marker,
          tuning,
          ...(volume ? { volumeId: volume.id } : {}),
        });
        // The workspace and its marker: a machine that was stopped and started again is rebuilt from its image,
        // and resumeSession tells that from the marker being gone (kept when the workspace is on a volume).
        const prep = await session.exec(
          ["/bin/sh", "-c", MARK, "roder-mark", config.workspace_root, marker],
          {
            timeoutS: 30,
            signal: options?.signal,
            operation: "prepare workspace",
          },
        );
        if ((prep.exit_code ?? 0) !== 0)
          throw new RunnerError(
            "create_failed",
            `could not create ${config.workspace_root} in the machine: ${prep.stderr ?? ""}`,
          );
        for (const e of d.default_manifest.entries.filter((x) => !x.writable)) {
          const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
          await session.exec(["chmod", "-R", "a-w", "--", target], {
            timeoutS: 30,
            signal: options?.signal,
            operation: "protect manifest entry",
          });
        }
        session.info.mounted.push(
          ...(await mountManifestInSandbox(session, {
            providerId: "fly",
            mounts: d.default_manifest.mounts,
            workspaceRoot: config.workspace_root,
            env: env(),
            allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
            ...(options?.signal ? { signal: options.signal } : {}),
          })),
        );
        if (options?.signal?.aborted) throw new CancelledError({ operation: "create session" });
        return session;
      } catch (error) {
        // A failed or aborted create destroys what it started: nothing is left running and billing.
        await destroyMachine(a, config.app, machine.id).catch(() => {});
        if (volume) await deleteVolume(a, config.app, volume.id, machine.id).catch(() => {});
        throw error;
      }
    },
    async resumeSession(state: RunnerSessionState, options?: RunnerCallOptions) {
      const meta = state.metadata as {
        machine_id?: unknown;
        config?: unknown;
        mode?: unknown;
        volume_id?: unknown;
      } | null;
      if (state.provider_id !== "fly" || typeof meta?.machine_id !== "string")
        throw new RunnerError("invalid_request", "not a fly session state");
      const config = FlyDestinationConfigSchema.parse(meta.config);
      // Only secret ids are taken from the state; their values come from the resolver or the environment.
      await secretEnv.prime(meta.config, (meta as { mounts?: unknown }).mounts);
      const volumeId = typeof meta.volume_id === "string" ? meta.volume_id : undefined;
      const a = api();
      const m = await a.call<FlyMachine>("GET", `/apps/${config.app}/machines/${meta.machine_id}`, {
        idempotent: true,
        operation: "get machine",
        signal: options?.signal,
        machineId: meta.machine_id,
      });
      if (m.state === "destroyed" || m.state === "destroying" || m.state === "failed")
        throw new SessionNotFoundError({
          providerId: "fly",
          sessionId: m.id,
          message: `machine ${m.id} is ${m.state}`,
        });
      if (m.state !== "started") {
        await a.call("POST", `/apps/${config.app}/machines/${m.id}/start`, {
          idempotent: true,
          operation: "start machine",
          signal: options?.signal,
          machineId: m.id,
        });
        await waitStarted(a, config, m.id, Date.now() + config.create_timeout_ms, options?.signal);
      }
      const lost = async (detail: string) => {
        // The session's files and processes are gone: it cannot be handed out. The empty machine goes too.
        await destroyMachine(a, config.app, m.id).catch(() => {});
        if (volumeId) await deleteVolume(a, config.app, volumeId, m.id).catch(() => {});
        return new FlyWorkspaceLostError({
          machineId: m.id,
          message: `fly: the workspace of machine ${m.id} was lost: ${detail}. The machine has been destroyed; create a new session.`,
        });
      };
      const mounted = Array.isArray((meta as { mounted?: unknown }).mounted)
        ? (meta as { mounted: SandboxMountRef[] }).mounted
        : [];
      if (meta.mode === "agent") {
        const am = meta as { agent_session_id?: unknown; agent_nonce?: unknown; workspace_root?: unknown };
        if (typeof am.agent_session_id !== "string" || typeof am.agent_nonce !== "string")
          throw new RunnerError("invalid_request", "not a fly agent session state");
        const agent = agentToken(await agentSecret(), config.app, am.agent_nonce);
        await waitAgent({
          config,
          machineId: m.id,
          token: agent,
          fetch: settings.fetch ?? globalThis.fetch,
          deadline: Date.now() + config.create_timeout_ms,
          signal: options?.signal,
          machineDown: () => machineDown(a, config, m.id),
        });
        const client = agentClient({
          config,
          machineId: m.id,
          token: agent,
          fetch: settings.fetch ?? globalThis.fetch,
          onRetry: settings.onRetry,
        });
        const info = {
          machineId: m.id,
          destinationId: state.destination_id,
          config,
          env: env() as Record<string, string | undefined>,
          nonce: am.agent_nonce,
          volumeId,
          mounted,
        };
        try {
          const inner = await client.resumeSession(
            agentState(config, am.agent_session_id, state.destination_id),
            options,
          );
          return new FlyAgentSession(a, inner, info);
        } catch (error) {
          if (!SessionNotFoundError.isInstance(error)) throw error;
        }
        // The agent does not know the session: the machine was reset (its agent started afresh).
        const reset =
          "the machine was stopped and started again, which rebuilds a Fly Machine from its image (only volumes keep data)";
        if (!volumeId || typeof am.workspace_root !== "string") throw await lost(reset);
        // The workspace is on the volume: a new agent session takes its files over (a rename on the volume).
        const inner = await client.createSession(agentDestination(config, state.destination_id), options);
        const session = new FlyAgentSession(a, inner, { ...info, mounted: [] });
        const moved = await session.runCommand(
          {
            command_id: `adopt-${randomBytes(4).toString("hex")}`,
            program: "/bin/sh",
            args: [
              "-c",
              '[ -d "$1" ] || exit 3; find "$1" -mindepth 1 -maxdepth 1 -exec mv -t "$2" -- {} + && rmdir -- "$1" && rm -f -- "$1.session.json"',
              "roder-adopt",
              am.workspace_root,
              session.root,
            ],
          },
          options,
        );
        if (moved.exit_code !== 0) {
          await inner.close().catch(() => {});
          throw await lost(`${reset}, and the old workspace is not on its volume (${moved.stderr.trim()})`);
        }
        return session;
      }
      const marker =
        typeof (meta as { marker?: unknown }).marker === "string"
          ? (meta as { marker: string }).marker
          : undefined;
      const session = new FlySession(a, {
        machineId: m.id,
        destinationId: state.destination_id,
        config,
        env: env() as Record<string, string | undefined>,
        mounted,
        ...(marker ? { marker } : {}),
        tuning,
        ...(volumeId ? { volumeId } : {}),
      });
      if (marker) {
        const r = await session.exec(
          ["/bin/sh", "-c", CHECK_MARK, "roder-check", config.workspace_root, marker],
          { timeoutS: 30, signal: options?.signal, operation: "check workspace", idempotent: true },
        );
        if ((r.exit_code ?? 0) !== 0)
          throw await lost(
            "the machine was stopped and started again, which rebuilds a Fly Machine from its image (only volumes keep data)",
          );
      }
      return session;
    },
  };
}

/** Default instance: token from FLY_API_TOKEN, API at FLY_API_URL or api.machines.dev. */
export const flyProvider = createFlyProvider();
