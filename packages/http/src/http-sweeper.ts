import {
  DEFAULT_RETRY,
  type EnvSource,
  InvalidDestinationConfigError,
  loadToken,
  type OwnedSession,
  type RetryPolicy,
  SessionNotFoundError,
  type SweepableProvider,
} from "@roder/runner-contract";
import { z } from "zod";
import { createTransport } from "./http-transport.js";

export interface HttpSweeperSettings {
  /** Provider id (default `http`). */
  id?: string;
  /** Server base URL; else the `baseUrlEnv` variable (default `RODER_RUNNER_HTTP_URL`). */
  baseUrl?: string;
  baseUrlEnv?: string;
  /** Bearer token; else the `tokenEnv` variable (default `RODER_RUNNER_HTTP_TOKEN`). */
  token?: string;
  tokenEnv?: string;
  env?: EnvSource;
  fetch?: typeof globalThis.fetch;
  retry?: Partial<RetryPolicy>;
}

const ListSchema = z.object({
  sessions: z.array(
    z.object({ session_id: z.string(), expires_at: z.string().nullish(), state: z.string().nullish() }),
  ),
});

/**
 * Lists a runner server's sessions by owner (`GET /sessions?owner=`, from the `owner` sent at create) and
 * closes them (`DELETE /sessions/{id}`), so `sweepExpiredSessions` can clean up after callers that died.
 */
export function createHttpSweeper(settings: HttpSweeperSettings = {}): SweepableProvider {
  const id = settings.id ?? "http";
  const tokenEnv = settings.tokenEnv ?? "RODER_RUNNER_HTTP_TOKEN";
  const baseUrlEnv = settings.baseUrlEnv ?? "RODER_RUNNER_HTTP_URL";
  const env = () => settings.env ?? process.env;
  const transport = () => {
    const baseUrl = settings.baseUrl ?? env()[baseUrlEnv];
    if (!baseUrl)
      throw new InvalidDestinationConfigError({
        providerId: id,
        message: `no server URL: pass baseUrl or set the ${baseUrlEnv} environment variable`,
      });
    return createTransport({
      providerId: id,
      baseUrl: baseUrl.replace(/\/+$/, ""),
      token: () =>
        loadToken({
          option: settings.token,
          env: env(),
          envName: tokenEnv,
          providerId: id,
          description: `the ${id} sweeper's bearer token`,
        }),
      tokenEnv,
      fetch: settings.fetch ?? globalThis.fetch,
      retry: { ...DEFAULT_RETRY, ...settings.retry },
    });
  };
  return {
    id,
    async listOwnedSessions({ owner, signal }): Promise<OwnedSession[]> {
      const res = await transport().request("GET", `/sessions?owner=${encodeURIComponent(owner)}`, {
        signal,
        idempotent: true,
        operation: "list sessions",
      });
      return ListSchema.parse(await res.json()).sessions.map((s) => ({
        session_id: s.session_id,
        expires_at: s.expires_at ?? null,
        state: s.state ?? "running",
      }));
    },
    async destroySession(sessionId, opts) {
      try {
        await transport().request("DELETE", `/sessions/${encodeURIComponent(sessionId)}`, {
          signal: opts?.signal,
          idempotent: true,
          operation: "close session",
          sessionId,
        });
      } catch (error) {
        // Already gone (closed, or expired and reaped by the server): nothing left to remove.
        if (!SessionNotFoundError.isInstance(error)) throw error;
      }
    },
  };
}
