/**
 * One-line wording for the errors Node gives for files and connections: the path or URL, what failed and the
 * errno, never a stack. Undici hides the socket's errno two causes deep (`fetch failed` → `connect
 * ECONNREFUSED`); it is dug out here.
 */

const ERRNO = /^E[A-Z0-9]+$/;

const WORDS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  EEXIST: "already exists",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  ELOOP: "too many symbolic links (or a symbolic link where none is followed)",
  EMFILE: "too many open files",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "name lookup failed (temporary)",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EPIPE: "broken pipe",
};

interface ErrnoLike {
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
  dest?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The first error in the cause chain that carries an errno code (`ENOENT`, `ECONNREFUSED`, …). */
export function errnoOf(error: unknown): (ErrnoLike & { code: string }) | undefined {
  let e = error as ErrnoLike | undefined;
  for (let i = 0; e && i < 8; i++) {
    if (typeof e.code === "string" && ERRNO.test(e.code)) return e as ErrnoLike & { code: string };
    const errors = (e as { errors?: unknown[] }).errors; // AggregateError (happy eyeballs)
    if (Array.isArray(errors)) {
      const inner = errors.map(errnoOf).find(Boolean);
      if (inner) return inner;
    }
    e = e.cause as ErrnoLike | undefined;
  }
  return undefined;
}

/** The innermost message of the cause chain (undici's "bad port", "other side closed", …). */
function deepestMessage(error: unknown): string | undefined {
  let e = error as ErrnoLike | undefined;
  let last: string | undefined;
  for (let i = 0; e && i < 8; i++) {
    if (typeof e.message === "string" && e.message) last = e.message;
    e = e.cause as ErrnoLike | undefined;
  }
  return last;
}

export function errnoWords(code: string): string {
  return WORDS[code] ?? code.toLowerCase();
}

/**
 * A file-system error of this host in one line: `cannot open ./data.csv: no such file or directory (ENOENT)`.
 * `what` names the file when the error does not (a descriptor, stdin).
 */
export function describeFsError(error: unknown, what?: string): string | undefined {
  const e = errnoOf(error);
  if (!e) return undefined;
  const path = typeof e.path === "string" ? e.path : what;
  const syscall = typeof e.syscall === "string" ? e.syscall : "access";
  return `cannot ${syscall}${path ? ` ${path}` : ""}: ${errnoWords(e.code)} (${e.code})`;
}

/**
 * A connection failure in one line, naming the URL and the errno:
 * `http: create session: connection failed: http://127.0.0.1:4000/sessions: connection refused (ECONNREFUSED)`.
 * Undefined when the error is not a connection failure with a URL.
 */
export function describeConnectionError(error: unknown): string | undefined {
  const top = error as { url?: unknown; statusCode?: unknown; message?: unknown };
  if (typeof top?.url !== "string" || top.statusCode !== undefined) return undefined;
  const e = errnoOf(error);
  const why = e ? `${errnoWords(e.code)} (${e.code})` : deepestMessage((error as ErrnoLike).cause);
  if (!why) return undefined;
  const message = String(top.message ?? "connection failed");
  return `${message}: ${top.url}: ${why}`;
}
