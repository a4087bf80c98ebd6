import {
  CancelledError,
  CommandTimeoutError,
  InvalidDestinationConfigError,
  isRetryableStatus,
  ProviderApiError,
  RunnerError,
  SessionNotFoundError,
} from "@roder/runner-contract";

/** HTTP status of the envd errors the SDK turns into classes without a `statusCode` (its envd error map). */
const STATUS_BY_NAME: Record<string, number> = {
  InvalidArgumentError: 400,
  NotEnoughSpaceError: 507,
  RateLimitError: 429,
  ServiceBusyError: 503,
};

/**
 * A sandbox that is not there any more, as the SDK reports it: the control plane's 404 (`SandboxNotFoundError`),
 * E2B's edge answering 502 "The sandbox was not found" (the SDK's `TimeoutError` "…likely due to sandbox
 * timeout"), or a stream cut while `/health` answers 502 ("…killed or reached its end of life…").
 */
const GONE =
  /The sandbox was not found|likely due to sandbox timeout|killed or reached its end of life|not running anymore|\[unavailable\]|sandbox was killed/i;

/** `template 'x' not found`, `tag 't' does not exist for template 'x'`, `you don't have access to template 'x'`. */
const TEMPLATE =
  /template '([^']*)' not found|does not exist for template '([^']*)'|access to template '([^']*)'/i;

/** The HTTP status of an SDK error: its `statusCode`, its class, or the `NNN: ` prefix of its message. */
export function e2bErrorStatus(error: unknown): number | undefined {
  const e = error as { statusCode?: unknown; name?: unknown; message?: unknown } | null;
  if (typeof e?.statusCode === "number") return e.statusCode;
  const byName = STATUS_BY_NAME[String(e?.name ?? "")];
  if (byName !== undefined) return byName;
  const m = /^(\d{3}): /.exec(String(e?.message ?? ""));
  return m ? Number(m[1]) : undefined;
}

/** E2B refused the API key (the SDK's AuthenticationError, a 401): the request was not processed. */
export function e2bKeyRefused(error: unknown): boolean {
  const e = error as { name?: unknown; message?: unknown } | null;
  return (
    e?.name === "AuthenticationError" ||
    e2bErrorStatus(error) === 401 ||
    /invalid api key|unauthori[sz]ed/i.test(String(e?.message ?? error))
  );
}

/**
 * Maps the SDK's errors (by name and status: the SDK's classes may come from another copy) to the contract's.
 * `template` is set for calls that name one (create): E2B's 404 for it is a bad destination, not a lost session.
 */
export function mapE2bError(
  error: unknown,
  ctx: { operation: string; sandboxId?: string; apiKeyEnv: string; template?: string },
): unknown {
  if (RunnerError.isInstance(error)) return error;
  const e = error as Error & { name?: string; code?: unknown };
  const name = e?.name ?? "";
  const msg = String(e?.message ?? error).replace(/e2b_[A-Za-z0-9]+/g, "e2b_***");
  const status = e2bErrorStatus(error);
  if (e2bKeyRefused(error)) {
    return new ProviderApiError(
      {
        providerId: "e2b",
        statusCode: 401,
        isRetryable: false,
        message: `${ctx.operation}: E2B refused the API key (set ${ctx.apiKeyEnv})`,
      },
      { cause: error },
    );
  }
  if (name === "FileNotFoundError")
    return new RunnerError("not_found", `${ctx.operation}: ${msg}`, { cause: error });
  const template = ctx.template !== undefined ? TEMPLATE.exec(msg) : null;
  if (template && (status === 404 || status === 403 || status === 400)) {
    const named = template[1] ?? template[2] ?? template[3] ?? ctx.template;
    const what = status === 403 ? "is not accessible to this API key's team" : "does not exist";
    const message = `template '${named}' ${what} on E2B (HTTP ${status}): set config.template to a template or snapshot id of your team`;
    return new InvalidDestinationConfigError(
      { providerId: "e2b", message, issues: [{ path: "template", message }] },
      { cause: error },
    );
  }
  if (name === "SandboxNotFoundError" || GONE.test(msg)) {
    const id = ctx.sandboxId ?? "?";
    return new SessionNotFoundError(
      {
        providerId: "e2b",
        sessionId: id,
        message: `${ctx.operation}: sandbox ${id} is gone (E2B killed it: its timeout passed — ttl_seconds after its last use, or the plan's maximum sandbox length after its start — or it was killed)`,
      },
      { cause: error },
    );
  }
  if (name === "RateLimitError" || status === 429)
    return new ProviderApiError(
      {
        providerId: "e2b",
        statusCode: 429,
        isRetryable: true,
        message: `${ctx.operation}: E2B refused it (rate or plan limit): ${msg}`,
      },
      { cause: error },
    );
  if (name === "TimeoutError")
    return new CommandTimeoutError({ timeoutMs: 0, operation: ctx.operation }, { cause: error });
  if (name === "AbortError") return new CancelledError({ operation: ctx.operation }, { cause: error });
  if (name === "NotFoundError")
    return new RunnerError("not_found", `${ctx.operation}: ${msg}`, { cause: error });
  return new ProviderApiError(
    {
      providerId: "e2b",
      message: `${ctx.operation}: ${msg}`,
      ...(status !== undefined ? { statusCode: status } : {}),
      // 4xx (400 bad request, 404…) and 507 (no space left) do not change by retrying.
      isRetryable: status === 507 ? false : isRetryableStatus(status),
    },
    { cause: error },
  );
}

/**
 * A file operation's error, typed by what envd said (its messages and the stand-in's): `not_found`,
 * `is_a_directory`, `not_a_regular_file`, `read_only` (the sandbox refused the access: permissions or a read-only
 * file system); anything else as `mapE2bError` has it. `path` is the path as the caller gave it.
 */
export function mapE2bFileError(
  error: unknown,
  ctx: { operation: string; path: string; sandboxId?: string; apiKeyEnv: string },
): unknown {
  const mapped = mapE2bError(error, ctx);
  // A gone sandbox, a refused key, an abort or a rate limit stay what they are.
  if (
    !ProviderApiError.isInstance(mapped) &&
    !(RunnerError.isInstance(mapped) && mapped.code === "not_found")
  )
    return mapped;
  const e = error as { name?: string; message?: string } | null;
  const msg = String(e?.message ?? error);
  const typed = (code: string, what: string) =>
    new RunnerError(code, `${ctx.operation}: ${what}: ${ctx.path}`, { cause: error });
  if (e?.name === "FileNotFoundError" || /does not exist|no such file|not found/i.test(msg))
    return typed("not_found", "no such file in the sandbox");
  if (/is a directory|EISDIR|Errno 21\b/i.test(msg)) return typed("is_a_directory", "path is a directory");
  if (/not a regular file/i.test(msg)) return typed("not_a_regular_file", "not a regular file");
  if (
    /permission denied|operation not permitted|read-only file system|EACCES|EPERM|EROFS|Errno (1|13|30)\b/i.test(
      msg,
    )
  )
    return typed(
      "read_only",
      ctx.operation === "read file"
        ? "the sandbox refused to read it (permissions)"
        : "the sandbox refused to write there (permissions or a read-only file system)",
    );
  return mapped;
}
