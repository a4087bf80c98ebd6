import type { IncomingMessage, ServerResponse } from "node:http";
import type { EnvSource, RemoteRunnerProvider } from "@roder/runner-contract";
import type { RunnerServerPolicy } from "./http-server-policy.js";

export interface RunnerServerOptions extends RunnerServerPolicy {
  /** The backend every session runs on (e.g. the local provider). */
  provider: RemoteRunnerProvider;
  /** Bearer token; default: the value of `tokenEnv` in `env`. */
  token?: string;
  tokenEnv?: string;
  env?: EnvSource;
  /**
   * Largest file body accepted by `PUT /files` (default 64 GiB). Files stream through the server with bounded
   * memory when the backend has `readFileStream`/`writeFileStream` (the local runner does).
   */
  maxFileBytes?: number;
  /** Largest file moved through a backend without streamed files, held in memory whole (default 512 MiB). */
  maxBufferedFileBytes?: number;
  /** Largest JSON body (default 8 MiB). */
  maxJsonBytes?: number;
  /** Path prefix, e.g. `/v1` (default none). */
  basePath?: string;
  /** Called once per request, for logs; never receives bodies or headers. */
  onRequest?: (entry: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Backend config keys the server sets itself, over what clients send (e.g. `{ workspace_path: "/w" }`).
   * Pinned keys a client sent with another value are listed in the create answer (`pinned_config_keys`).
   */
  enforceConfig?: Record<string, unknown>;
  /**
   * Idle lifetime of a session created without `ttl_seconds` (the Rust client sends none): it is closed this
   * many seconds after its last request ended, never while a request (a command, a stream) is in flight.
   * Default 3600; `0` = no expiry.
   */
  defaultTtlSeconds?: number;
  /**
   * The config keys the backend knows. Others (vendor keys such as `template`, `region`) are ignored and
   * listed in the create answer (`ignored_config_keys`), or refused with `strictConfig`. Default: learnt from
   * the backend's own `invalid_destination_config` answer (its unrecognized keys).
   */
  backendConfigKeys?: readonly string[];
  /**
   * The base URL clients reach this server by (e.g. `https://runners.example.com/v1` behind a reverse proxy);
   * port previews are handed out under it. Default: from the request's `Host` header and `basePath`.
   */
  publicUrl?: string;
  /**
   * Hand out port previews as `/sessions/{id}/ports/{port}/` (bearer credential needed) instead of the default
   * `/previews/{preview_id}/` (an unguessable URL a browser can open, valid while the session lives).
   */
  authenticatedPreviews?: boolean;
  /** Live sessions at most (default 1000); a create past it is a 429 `too_many_sessions`. */
  maxSessions?: number;
  /**
   * Snapshot refs kept for restore (default 1000; the oldest is forgotten past it). `DELETE
   * /snapshots/{id}` forgets one. The backend's own archive is the backend's to delete.
   */
  maxSnapshots?: number;
  /**
   * Open connections at most (default 1024, keep it under the process's descriptor limit). At the cap a new
   * connection evicts the oldest one with no request in flight (unfinished headers, idle keep-alive).
   */
  maxConnections?: number;
  /**
   * A request's headers must arrive within this (default 30 s; then 408 and the socket is closed). At the
   * connection cap idle and half-open connections are evicted first, so this only bounds how long a
   * half-open connection holds a slot below the cap.
   */
  headersTimeoutMs?: number;
  /** How often expired sessions are closed (default 30 s; an expired session is refused at once anyway). */
  reapIntervalMs?: number;
}

export interface RunnerServer {
  handler(req: IncomingMessage, res: ServerResponse): void;
  listen(port?: number, host?: string): Promise<{ url: string; port: number }>;
  /** Stops accepting requests and closes every session. */
  close(): Promise<void>;
  /** Live session count (for tests and metrics). */
  sessionCount(): number;
  /** Closes the sessions past their expiry now (the reaper timer does it every `reapIntervalMs`); their ids. */
  reapExpired(): Promise<string[]>;
}
