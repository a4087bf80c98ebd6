import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody, sendJson } from "./box-http.js";
import type { BoxRateLimit } from "./box-standin.js";
import { BoxApiError } from "./box-store.js";

/**
 * Box's OAuth 2 side: access and refresh tokens (issued, expired, rotated by `POST /oauth2/token` with
 * `grant_type=refresh_token`), the bearer check of every API call, and the per-user rate limits.
 */
export function createBoxAuth(limits: BoxRateLimit | null, tokenSeconds: number) {
  const accessTokens = new Map<string, number>(); // token → expiry (ms)
  const refreshTokens = new Set<string>();
  const issue = (expired = false) => {
    const access = randomBytes(24).toString("base64url");
    const refresh = randomBytes(32).toString("base64url");
    const exp = expired ? Date.now() - 60_000 : Date.now() + tokenSeconds * 1000;
    accessTokens.set(access, exp);
    refreshTokens.add(refresh);
    return { access, refresh, exp };
  };
  let refreshes = 0;
  const windows = new Map<string, number[]>(); // `${token}:${kind}` → request times in the last minute

  const authenticate = (req: IncomingMessage): string => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const exp = m ? accessTokens.get(m[1]!) : undefined;
    if (exp === undefined)
      throw new BoxApiError(401, "unauthorized", "Unauthorized", undefined, {
        "www-authenticate":
          'Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid."',
      });
    if (exp <= Date.now())
      throw new BoxApiError(401, "unauthorized", "Unauthorized", undefined, {
        "www-authenticate":
          'Bearer realm="Service", error="expired_token", error_description="The access token provided has expired."',
      });
    return m![1]!;
  };

  const rateLimit = (token: string, upload: boolean) => {
    if (!limits) return;
    const max = upload ? limits.uploadsPerMinute : limits.perMinute;
    const key = `${token}:${upload ? "upload" : "api"}`;
    const now = Date.now();
    const w = (windows.get(key) ?? []).filter((t) => t > now - 60_000);
    windows.set(key, w);
    if (w.length >= max) {
      const retry = Math.max(1, Math.ceil((w[0]! + 60_000 - now) / 1000));
      throw new BoxApiError(
        429,
        "rate_limit_exceeded",
        "Request rate limit exceeded, please try again later",
        undefined,
        {
          "retry-after": String(retry),
        },
      );
    }
    w.push(now);
  };

  const token = async (req: IncomingMessage, res: ServerResponse) => {
    const form = new URLSearchParams((await readBody(req, 1 << 16)).toString("utf8"));
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const [bid, bsecret] = basic ? Buffer.from(basic[1]!, "base64").toString("utf8").split(":") : [];
    const id = form.get("client_id") ?? (bid ? decodeURIComponent(bid) : "");
    const secret = form.get("client_secret") ?? (bsecret ? decodeURIComponent(bsecret) : "");
    if (!id || !secret)
      return sendJson(res, 400, {
        error: "invalid_client",
        error_description: "The client credentials are invalid",
      });
    if (form.get("grant_type") !== "refresh_token")
      return sendJson(res, 400, {
        error: "unsupported_grant_type",
        error_description: "Grant type is not supported",
      });
    const refresh = form.get("refresh_token") ?? "";
    if (!refreshTokens.delete(refresh))
      return sendJson(res, 400, { error: "invalid_grant", error_description: "Invalid refresh token" });
    refreshes += 1;
    const t = issue();
    return sendJson(res, 200, {
      access_token: t.access,
      expires_in: tokenSeconds,
      restricted_to: [],
      refresh_token: t.refresh,
      token_type: "bearer",
    });
  };

  return {
    issue,
    authenticate,
    rateLimit,
    token,
    /** Refresh-token exchanges so far. */
    get refreshes() {
      return refreshes;
    },
  };
}
