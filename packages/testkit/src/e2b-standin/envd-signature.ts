import { createHash, timingSafeEqual } from "node:crypto";

/**
 * envd's signed `/files` URLs (e2b-dev/infra `envd/internal/api/auth.go`, the SDK's `getSignature`):
 * `v1_` + base64(sha256("<path>:<operation>:<username>:<accessToken>[:<expiration>]")) without padding, over
 * the `path` and `username` query values exactly as sent (an absent username signs as "").
 */
export function fileSignature(
  path: string,
  operation: "read" | "write",
  username: string,
  accessToken: string,
  expiration?: number,
): string {
  const parts = [path, operation, username, accessToken];
  if (expiration !== undefined) parts.push(String(expiration));
  const hash = createHash("sha256").update(parts.join(":"), "utf8").digest("base64");
  return `v1_${hash.replace(/=+$/, "")}`;
}

export function signatureMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * `validateSigning`: with the access token in `X-Access-Token` the request is allowed (a wrong one is refused);
 * otherwise the signature must match and not be expired. Returns envd's 401 message, or `null` when allowed.
 */
export function checkFileAccess(opts: {
  accessToken: string;
  headerToken: string | undefined;
  signature: string | null;
  expiration: string | null;
  username: string | null;
  path: string;
  operation: "read" | "write";
}): string | null {
  if (opts.headerToken) {
    return opts.headerToken === opts.accessToken ? null : "access token present in header but does not match";
  }
  if (opts.signature === null) return "missing signature query parameter";
  const exp = opts.expiration === null ? undefined : Number.parseInt(opts.expiration, 10);
  const expected = fileSignature(opts.path, opts.operation, opts.username ?? "", opts.accessToken, exp);
  if (!signatureMatches(expected, opts.signature)) return "invalid signature";
  if (exp !== undefined && exp < Math.floor(Date.now() / 1000)) return "signature is already expired";
  return null;
}
