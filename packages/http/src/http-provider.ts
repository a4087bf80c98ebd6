import {
  CancelledError,
  checkProviderId,
  codecs,
  createHttpClient,
  DEFAULT_RETRY,
  decodeSessionMetadata,
  type EnvSource,
  InvalidDestinationConfigError,
  loadToken,
  parseDestinationInput,
  type RemoteRunnerProviderOf,
  type RetryPolicy,
  type RunnerCallOptions,
  type RunnerCapabilities,
  RunnerCapabilitiesSchema,
  type RunnerDestinationInput,
  type RunnerSessionState,
  runnerCapabilities,
  tokenRoute,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { planServerMounts } from "@roder/runner-storage";
import { z } from "zod";
import { HttpDestinationConfigSchema, parseHttpConfig } from "./http-config.js";
import { HTTP_LIMITS } from "./http-limits.js";
import { HttpRunnerSession } from "./http-session.js";
import { createTransport } from "./http-transport.js";

/** What a session's file API addresses, as the server says (an older server says nothing: the workspace). */
const FileScopeSchema = z
  .enum(["sandbox", "workspace"])
  .nullish()
  .transform((v) => v ?? "workspace");

/** An HTTP session state's metadata (a state without any, as an older client wrote, reads as `{}`). */
const HttpStateMetadataSchema = z.preprocess(
  (m) => m ?? {},
  z
    .object({
      base_url: z.string().optional(),
      workspace_root: z.string().nullish(),
      file_scope: FileScopeSchema,
    })
    .passthrough(),
);

export interface HttpRunnerProviderSettings {
  /** Provider id (default `http`); a hosted service may register its own id. */
  id?: string;
  /**
   * Server base URL; else the `baseUrlEnv` variable; else `destination.config.base_url` (or a state's). When
   * one is configured, a destination or state naming another URL is refused: the token goes only there.
   */
  baseUrl?: string;
  baseUrlEnv?: string;
  /**
   * The bearer token, for an app that holds one per tenant or server; default the `tokenEnv` variable. Kept in
   * memory only: never in a destination config, a session state or an error. A function is asked before each
   * request (a token from a secret store, rotated there: the provider never caches it).
   */
  token?: string | (() => string | Promise<string>);
  /** Environment variable holding the bearer token when `token` is not given (default `RODER_RUNNER_HTTP_TOKEN`). */
  tokenEnv?: string;
  fetch?: typeof globalThis.fetch;
  env?: EnvSource;
  retry?: Partial<RetryPolicy>;
  /** What the server's backend can do, if known in advance (default: all of the protocol). */
  capabilities?: RunnerCapabilities;
  onRetry?: (operation: string, attempt: number, error: unknown) => void;
  /** Owner tag sent with every created session (`GET /sessions?owner=` lists them). Default `roder-runners`. */
  owner?: string;
}

const ALL: RunnerCapabilities = runnerCapabilities();

/** The HTTP provider: its sessions are `HttpRunnerSession`s (with `startCommand` and `attachCommand`). */
export type HttpRunnerProvider = RemoteRunnerProviderOf<HttpRunnerSession>;

export function createHttpRunnerProvider(settings: HttpRunnerProviderSettings = {}): HttpRunnerProvider {
  const id = settings.id ?? "http";
  const tokenEnv = settings.tokenEnv ?? "RODER_RUNNER_HTTP_TOKEN";
  const baseUrlEnv = settings.baseUrlEnv ?? "RODER_RUNNER_HTTP_URL";
  const env = () => settings.env ?? process.env;
  const retry = { ...DEFAULT_RETRY, ...settings.retry };
  const owner = settings.owner ?? "roder-runners";
  const token = async () =>
    loadToken({
      option: typeof settings.token === "function" ? await settings.token() : settings.token,
      env: env(),
      envName: tokenEnv,
      providerId: id,
      description: `the ${id} runner's bearer token`,
    });
  /**
   * The server URL. The bearer credential goes only to the URL this provider was configured for (the
   * `baseUrl` setting, else the `baseUrlEnv` variable): a destination or state naming another is refused,
   * naming both. With none configured, the destination's (or state's) URL is used.
   */
  const baseUrlFor = (fromConfig: string | null | undefined, where: string) => {
    const configured = settings.baseUrl ?? env()[baseUrlEnv];
    const norm = (u: string) => u.replace(/\/+$/, "");
    if (configured && fromConfig && norm(configured) !== norm(fromConfig))
      throw new InvalidDestinationConfigError({
        providerId: id,
        message: `${where} names the server ${fromConfig}, but this ${id} provider is configured for ${configured} (${settings.baseUrl ? "baseUrl" : baseUrlEnv}): its ${tokenEnv} credential is sent only there`,
      });
    const url = configured ?? fromConfig;
    if (!url)
      throw new InvalidDestinationConfigError({
        providerId: id,
        message: `no server URL: pass baseUrl, set config.base_url or the ${baseUrlEnv} environment variable`,
      });
    return url.replace(/\/+$/, "");
  };
  const transport = (baseUrl: string) =>
    createTransport({
      providerId: id,
      baseUrl,
      token,
      tokenEnv: tokenRoute({ option: settings.token, envName: tokenEnv }),
      fetch: settings.fetch ?? globalThis.fetch,
      retry,
      ...(settings.onRetry ? { onRetry: settings.onRetry } : {}),
    });

  /** `POST /sessions` (never retried: it creates), then a session on the id the server gave. */
  const postSession = async (
    t: ReturnType<typeof transport>,
    body: string,
    o: { destinationId: string; baseUrl: string; operation: string; signal?: AbortSignal | undefined },
  ) => {
    if (o.signal?.aborted) throw new CancelledError({ operation: o.operation });
    // The create request itself is not aborted: a session the server made after the client hung up would be
    // left with no one knowing its id. An abort is honoured as soon as the answer is in: the session is closed.
    const res = await t.request("POST", "/sessions", {
      json: body,
      idempotent: false,
      operation: o.operation,
    });
    const created = z
      .object({
        session_id: z.string(),
        workspace_root: z.string().nullish(),
        file_scope: FileScopeSchema,
      })
      .parse(await res.json());
    if (o.signal?.aborted) {
      await t
        .request("DELETE", `/sessions/${encodeURIComponent(created.session_id)}`, {
          idempotent: true,
          operation: "close aborted session",
        })
        .catch(() => undefined);
      throw new CancelledError({ operation: o.operation });
    }
    return new HttpRunnerSession(t, {
      providerId: id,
      sessionId: created.session_id,
      destinationId: o.destinationId,
      baseUrl: o.baseUrl,
      workspaceRoot: created.workspace_root ?? null,
      fileScope: created.file_scope,
    });
  };

  const validate = (destination: RunnerDestinationInput) => {
    const d = parseDestinationInput(destination, id);
    checkProviderId(id, "destination", d.provider_id);
    const config = parseHttpConfig(id, d.config, tokenEnv);
    const caps = settings.capabilities ?? ALL;
    for (const m of d.default_manifest.mounts) {
      if (!caps.mounts[m.intent.kind]) {
        throw new UnsupportedCapabilityError({
          providerId: id,
          capability: `mounts.${m.intent.kind}`,
          message: `the ${id} runner server cannot mount ${m.intent.kind} (mount '${m.name}')`,
        });
      }
    }
    return { d, config, baseUrl: baseUrlFor(config.base_url, "config.base_url") };
  };

  return {
    id,
    capabilities: () => settings.capabilities ?? ALL,
    setupHint() {
      const missing = [
        settings.token || env()[tokenEnv] ? null : `${tokenEnv} (or the token option)`,
        settings.baseUrl || env()[baseUrlEnv] ? null : `${baseUrlEnv} (or config.base_url)`,
      ].filter(Boolean);
      return missing.length ? `set ${missing.join(" and ")}` : null;
    },
    limits: () => ({ ...HTTP_LIMITS, provider_id: id }),
    planMounts: (d) =>
      planServerMounts(parseDestinationInput(d, id), {
        providerId: id,
        env: env(),
        capabilities: (settings.capabilities ?? ALL).mounts,
      }),
    async validateDestination(destination) {
      validate(destination);
    },
    async createSession(destination, options?: RunnerCallOptions) {
      const { d, config, baseUrl } = validate(destination);
      const t = transport(baseUrl);
      const body = JSON.stringify({
        destination_id: d.id,
        provider_id: id,
        manifest: codecs.RunnerManifest.toJSON(d.default_manifest),
        config: config.backend_config ?? null,
        ...(config.mounts ? { mounts: config.mounts } : {}),
        owner,
        ttl_seconds: config.ttl_seconds,
      });
      return postSession(t, body, {
        destinationId: d.id,
        baseUrl,
        operation: "create session",
        signal: options?.signal,
      });
    },
    async resumeSession(state: RunnerSessionState, options?: RunnerCallOptions) {
      const meta = decodeSessionMetadata(HttpStateMetadataSchema, state, id);
      const baseUrl = baseUrlFor(meta.base_url, "the session state");
      const t = transport(baseUrl);
      if (state.snapshot) {
        const body = JSON.stringify({
          destination_id: state.destination_id,
          provider_id: id,
          snapshot: JSON.parse(codecs.RunnerSnapshotRef.encode(state.snapshot)),
          owner,
          ttl_seconds: HttpDestinationConfigSchema.shape.ttl_seconds.parse(undefined),
        });
        return postSession(t, body, {
          destinationId: state.destination_id,
          baseUrl,
          operation: "restore snapshot",
          signal: options?.signal,
        });
      }
      const res = await t.request("GET", `/sessions/${encodeURIComponent(state.session_id)}`, {
        signal: options?.signal,
        idempotent: true,
        operation: "resume session",
        sessionId: state.session_id,
      });
      const info = z
        .object({
          workspace_root: z.string().nullish(),
          file_scope: z.enum(["sandbox", "workspace"]).nullish(),
        })
        .passthrough()
        .parse(await res.json());
      return new HttpRunnerSession(t, {
        providerId: id,
        sessionId: state.session_id,
        destinationId: state.destination_id,
        baseUrl,
        workspaceRoot: info.workspace_root ?? meta.workspace_root ?? null,
        // The server's word now; a state's only when the server (an older one) says nothing.
        fileScope: info.file_scope ?? meta.file_scope,
      });
    },
  };
}

/** Default instance: base URL and token from `RODER_RUNNER_HTTP_URL` / `RODER_RUNNER_HTTP_TOKEN`. */
export const httpRunnerProvider = createHttpRunnerProvider();

/**
 * Asks a server what its backend supports (`GET /capabilities`), so a provider can be built with the truth:
 * `createHttpRunnerProvider({ capabilities: (await fetchRunnerServerInfo(...)).capabilities })`.
 */
export async function fetchRunnerServerInfo(args: {
  baseUrl: string;
  token: string;
  fetch?: typeof globalThis.fetch;
}): Promise<{
  provider_id: string;
  capabilities: RunnerCapabilities;
  limits: Record<string, unknown>;
}> {
  return createHttpClient({
    providerId: "http",
    baseUrl: args.baseUrl,
    auth: { token: args.token },
    fetch: args.fetch,
  }).json(
    { method: "GET", path: "/capabilities", operation: "read the server's capabilities", idempotent: true },
    z.object({
      provider_id: z.string(),
      capabilities: RunnerCapabilitiesSchema,
      limits: z.record(z.string(), z.unknown()).default(() => ({})),
    }),
  );
}
