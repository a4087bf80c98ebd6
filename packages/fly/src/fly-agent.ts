import { createHmac } from "node:crypto";
import {
  CancelledError,
  createHttpClient,
  ProviderApiError,
  RunnerError,
  type RunnerSessionState,
  sleep,
} from "@roder/runner-contract";
import { createHttpRunnerProvider, type HttpRunnerProvider } from "@roder/runner-http";
import type { FlyDestinationConfig } from "./fly-config.js";

/** The agent's bearer token lives in the machine's env under this name (what `roder-runner serve` reads). */
export const AGENT_TOKEN_ENV = "RODER_RUNNER_SERVER_TOKEN";

/**
 * The agent's per-session bearer token: HMAC-SHA256 of the app and a random per-session nonce under a secret
 * the provider holds (the `agentSecret` setting, else `RODER_FLY_AGENT_SECRET`, else the Fly API token). The
 * state keeps only the nonce, so `resumeSession` in another process derives the same token and nothing
 * persisted is a credential.
 */
export function agentToken(secret: string, app: string, nonce: string): string {
  return createHmac("sha256", secret)
    .update(`roder-fly-agent-v1\u0000${app}\u0000${nonce}`)
    .digest("base64url");
}

/** The app's public address for this config. */
export function agentBaseUrl(config: FlyDestinationConfig): string {
  return config.agent_url.replaceAll("{app}", config.app).replace(/\/+$/, "");
}

/**
 * The machine's init: `roder-runner serve` on the internal port, on all interfaces of the machine (Fly's proxy
 * reaches it on the machine's private address), without bubblewrap and with `--host-is-sandbox` (the machine is
 * the sandbox: the file API and a command's cwd address the machine's whole view, as in exec mode), its sessions'
 * workspaces under `workspace_root` (the volume, when there is one), idle expiry off (the provider closes it).
 */
export function agentInit(config: FlyDestinationConfig): string[] {
  return [
    ...config.agent_command,
    "serve",
    "--port",
    String(config.agent_port),
    "--host",
    "0.0.0.0",
    "--isolation",
    "none",
    "--host-is-sandbox",
    "--allow-host-paths",
    "--session-ttl",
    "0",
  ];
}

/** The app's service on the agent's port (Fly's proxy: TLS and HTTP on 443, HTTP on 80; never stopped by it). */
export function agentServices(config: FlyDestinationConfig) {
  return [
    {
      protocol: "tcp",
      internal_port: config.agent_port,
      autostop: "off",
      autostart: false,
      ports: [
        { port: 443, handlers: ["tls", "http"] },
        { port: 80, handlers: ["http"] },
      ],
    },
  ];
}

/**
 * A fetch that pins every request to one machine: Fly's proxy routes a request carrying
 * `fly-force-instance-id: <machine id>` to that machine (docs: networking/dynamic-request-routing).
 */
export function pinnedFetch(machineId: string, base: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("fly-force-instance-id", machineId);
    return base(input, { ...init, headers });
  };
}

/** The HTTP runner client (packages/http) aimed at one machine's agent. */
export function agentClient(args: {
  config: FlyDestinationConfig;
  machineId: string;
  token: string;
  fetch: typeof globalThis.fetch;
  onRetry?: ((operation: string, attempt: number, error: unknown) => void) | undefined;
}): HttpRunnerProvider {
  return createHttpRunnerProvider({
    id: "fly",
    baseUrl: agentBaseUrl(args.config),
    token: args.token,
    fetch: pinnedFetch(args.machineId, args.fetch),
    env: {},
    ...(args.onRetry ? { onRetry: args.onRetry } : {}),
  });
}

/** The agent's destination: the sessions' workspaces under the Fly workspace root. */
export function agentDestination(config: FlyDestinationConfig, destinationId: string) {
  return {
    id: destinationId,
    provider_id: "fly",
    config: { backend_config: { workspace_dir: config.workspace_root }, ttl_seconds: config.ttl_seconds },
    default_manifest: { entries: [], mounts: [] },
  };
}

/** The state the HTTP client resumes an agent session from. */
export function agentState(
  config: FlyDestinationConfig,
  sessionId: string,
  destinationId: string,
): RunnerSessionState {
  return {
    provider_id: "fly",
    session_id: sessionId,
    destination_id: destinationId,
    snapshot: null,
    metadata: { base_url: agentBaseUrl(config) },
  };
}

/**
 * Waits until the agent answers `GET /capabilities` with its token through the app's address, within `deadline`
 * (ms since epoch): a machine is `started` when its init runs, before the agent listens.
 */
export async function waitAgent(args: {
  config: FlyDestinationConfig;
  machineId: string;
  token: string;
  fetch: typeof globalThis.fetch;
  deadline: number;
  signal?: AbortSignal | undefined;
  /** Why the machine can no longer answer (it stopped: its init, the agent, exited), or null; asked now and then. */
  machineDown?: () => Promise<string | null>;
}): Promise<void> {
  // One attempt per poll: this loop is the retry, on the create deadline.
  const agent = createHttpClient({
    providerId: "fly",
    baseUrl: agentBaseUrl(args.config),
    auth: { token: args.token },
    fetch: pinnedFetch(args.machineId, args.fetch),
    retry: { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0 },
  });
  let last = "no answer";
  let checked = Date.now();
  for (let delay = 50; ; delay = Math.min(1000, delay * 2)) {
    if (args.signal?.aborted) throw new CancelledError({ operation: "create session" });
    const left = args.deadline - Date.now();
    if (left <= 0)
      throw new RunnerError(
        "create_timeout",
        `fly machine ${args.machineId}: the agent did not answer at ${agentBaseUrl(args.config)} within the create timeout (${last})`,
      );
    try {
      await agent.request({
        method: "GET",
        path: "/capabilities",
        operation: "wait for the agent",
        idempotent: true,
        signal: args.signal,
        timeoutMs: Math.max(1, Math.min(left, 10_000)),
        buffer: true,
      });
      return;
    } catch (error) {
      if (args.signal?.aborted) throw new CancelledError({ operation: "create session" }, { cause: error });
      const status = ProviderApiError.isInstance(error) ? error.statusCode : undefined;
      if (status === 401 || status === 403)
        throw new ProviderApiError({
          providerId: "fly",
          statusCode: status,
          isRetryable: false,
          message: `fly machine ${args.machineId}: the agent refused the session's token (is agent_command a roder-runner that reads ${AGENT_TOKEN_ENV}?)`,
        });
      if (!ProviderApiError.isInstance(error)) throw error;
      last = status !== undefined ? `HTTP ${status}` : "connection failed";
    }
    if (args.machineDown && Date.now() - checked > 2000) {
      checked = Date.now();
      const why = await args.machineDown();
      if (why)
        throw new ProviderApiError({
          providerId: "fly",
          isRetryable: false,
          message: `fly machine ${args.machineId}: the agent is not running (${why}): does the image have it (agent_command ${JSON.stringify(args.config.agent_command)})?`,
        });
    }
    await sleep(Math.min(delay, Math.max(1, args.deadline - Date.now())));
  }
}
