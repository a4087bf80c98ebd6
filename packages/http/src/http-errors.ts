import {
  CancelledError,
  CommandNotFoundError,
  PathOutsideWorkspaceError,
  ProviderApiError,
  RunnerError,
  SessionNotFoundError,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";

export { parseRetryAfter } from "@roder/runner-contract";

/** The error body of the protocol: `{ "error": { "code", "message", ...fields } }`. */
export interface WireErrorBody {
  error: {
    code: string;
    message: string;
    capability?: string;
    path?: string;
    command_id?: string;
    retryable?: boolean;
  };
}

/** HTTP status for a typed error (server side). */
export function statusForError(error: unknown): number {
  if (!RunnerError.isInstance(error)) return 500;
  switch (error.code) {
    case "wire_decode":
    case "invalid_request":
    case "invalid_destination_config":
    case "path_outside_workspace":
    case "invalid_mount_uri":
    case "secret_in_config":
    case "is_a_directory":
    case "not_a_regular_file":
      return 400;
    case "session_not_found":
    case "command_not_found":
    case "not_found":
      return 404;
    case "read_only":
    case "host_paths_refused":
    case "config_refused":
      return 403;
    case "unsupported_capability":
      return 501;
    case "command_timeout":
      return 504;
    case "cancelled":
      return 499;
    case "missing_secret":
    case "invalid_secret":
    case "missing_dependency":
      return 424;
    case "provider_api":
      return 502;
    default:
      return 500;
  }
}

/** Rebuilds a typed error from a protocol error response (client side). */
export function errorFromResponse(args: {
  providerId: string;
  status: number;
  body: unknown;
  url: string;
  operation: string;
  sessionId?: string;
  retryAfterMs?: number;
  tokenEnv: string;
}): RunnerError {
  const e = (args.body as Partial<WireErrorBody> | null)?.error;
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = typeof e?.message === "string" ? e.message : `${args.operation} failed`;
  if (args.status === 401 || args.status === 403) {
    // A refusal of what the request asked (not of the credential) stays a typed RunnerError with its code.
    if (code !== "read_only" && code !== "host_paths_refused" && code !== "config_refused") {
      return new ProviderApiError({
        providerId: args.providerId,
        statusCode: args.status,
        url: args.url,
        isRetryable: false,
        message: `${args.operation}: the server refused the token (set ${args.tokenEnv}): ${message}`,
      });
    }
  }
  switch (code) {
    case "session_not_found":
      return new SessionNotFoundError({
        providerId: args.providerId,
        sessionId: args.sessionId ?? "?",
        message,
      });
    case "command_not_found":
      return new CommandNotFoundError({
        providerId: args.providerId,
        commandId: e?.command_id ?? "?",
        message,
      });
    case "unsupported_capability":
      return new UnsupportedCapabilityError({
        providerId: args.providerId,
        capability: e?.capability ?? "unknown",
        message,
      });
    case "path_outside_workspace":
      return new PathOutsideWorkspaceError({ path: e?.path ?? "?", root: "?", reason: message });
    case "cancelled":
      return new CancelledError({ operation: args.operation, reason: message });
    case undefined:
      break;
    default:
      if (args.status < 500 && args.status !== 429 && args.status !== 408)
        return new RunnerError(code, message);
  }
  return new ProviderApiError({
    providerId: args.providerId,
    statusCode: args.status,
    url: args.url,
    message: `${args.operation}: ${message}`,
    ...(args.retryAfterMs !== undefined ? { retryAfterMs: args.retryAfterMs } : {}),
  });
}
