import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerSessionState,
  RunnerSnapshotRef,
} from "@roder/runner-contract";
import type { RunnerServerPolicy } from "./http-server-policy.js";
import type { CommandInputs } from "./http-server-stdin.js";

/** A live session of the server. */
export interface Entry {
  session: RemoteRunnerSession;
  destinationId: string;
  /** The provider id the client asked for (what its snapshot refs carry). */
  clientProviderId: string;
  owner: string | null;
  /** Epoch ms after which the session is closed; null: never (or idle-based, see `idleMs`). */
  expiresAt: number | null;
  /** Idle lifetime (ms) for sessions created without a TTL; `expiresAt` moves with each request. */
  idleMs: number | null;
  /** Requests in flight (an idle session is never reaped while one runs). */
  active: number;
  /** Host path → what the client sees, for error messages. */
  hostPaths: Array<[string, string]>;
  /** Port → preview id. */
  previews: Map<number, string>;
  /** Running commands' stdin (writes with offsets). */
  inputs: CommandInputs;
}

/** A request to `/sessions/{id}/…`: the exchange, its URL and path segments, the session's entry and id. */
export interface SessionRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  parts: string[];
  e: Entry;
  id: string;
}

/** What the route modules of one server share (built once by `createRunnerServer`). */
export interface ServerContext {
  provider: RemoteRunnerProvider;
  options: RunnerServerPolicy & {
    maxSessions?: number;
    maxSnapshots?: number;
    backendConfigKeys?: readonly string[];
    authenticatedPreviews?: boolean;
    publicUrl?: string;
  };
  sessions: Map<string, Entry>;
  /** Snapshots by the opaque id handed to clients; the backend's ref never leaves the server. */
  snapshots: Map<string, { state: RunnerSessionState; snapshot: RunnerSnapshotRef }>;
  /** Preview URLs handed out: unguessable id → the session and port they reach (gone with the session). */
  previews: Map<string, { sessionId: string; port: number }>;
  maxJson: number;
  maxFile: number;
  maxBufferedFile: number;
  /** Idle lifetime (ms) of sessions created without a TTL; 0: none. */
  idleMs: number;
  /** Backend config keys the operator pins. */
  enforced: Record<string, unknown>;
  basePath: string;
  /** The server's token and the secrets of its environment (redacted from every message). */
  secrets(): string[];
  isClosing(): boolean;
  expired(e: Entry, now?: number): boolean;
  readJson(req: IncomingMessage): Promise<string>;
  /** The base URL clients reach this server by (for previews). */
  publicBase(req: IncomingMessage): string;
}

export type { IncomingMessage, RemoteRunnerSession, ServerResponse };
