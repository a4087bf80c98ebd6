import { createHash, createVerify, type KeyObject } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { GcsError } from "./gcs-store.js";

/** RFC 3986 strict encoding, as the SDK's signer uses. */
const strict = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Checks a V4 signed XML-API request (GOOG4-RSA-SHA256) against the service account's public key. Written apart
 * from runner-storage's signer on purpose (not a shared function): the testkit depends on the contract only, and
 * a verifier that shared the signer's canonical request would accept the signer's mistakes.
 */
export function verifySigned(
  req: IncomingMessage,
  url: URL,
  signer: { clientEmail: string; publicKey: KeyObject },
): void {
  const { clientEmail, publicKey } = signer;
  const q = Object.fromEntries(url.searchParams);
  const signature = q["X-Goog-Signature"];
  if (!signature || q["X-Goog-Algorithm"] !== "GOOG4-RSA-SHA256")
    throw new GcsError(403, "missing or unsupported signature");
  const date = q["X-Goog-Date"]!;
  const expires = Number(q["X-Goog-Expires"]);
  const signedAt = Date.parse(
    `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
  );
  if (!(signedAt <= Date.now() + 60_000) || Date.now() > signedAt + expires * 1000)
    throw new GcsError(400, "ExpiredToken: the signed URL has expired");
  const credential = q["X-Goog-Credential"] ?? "";
  if (!credential.startsWith(`${clientEmail}/`)) throw new GcsError(403, "unknown signer");
  const signedHeaders = (q["X-Goog-SignedHeaders"] ?? "").split(";");
  const headerValue = (h: string) =>
    h === "host" ? String(req.headers.host ?? "").replace(/:\d+$/, "") : String(req.headers[h] ?? "");
  const canonicalHeaders = signedHeaders
    .map(
      (h) =>
        `${h}:${headerValue(h)
          .trim()
          .replace(/\s{2,}/g, " ")}\n`,
    )
    .join("");
  const canonicalQuery = Object.entries(q)
    .filter(([k]) => k !== "X-Goog-Signature")
    .map(([k, v]) => [strict(k), strict(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalRequest = [
    req.method,
    url.pathname,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(";"),
    "UNSIGNED-PAYLOAD",
  ].join("\n");
  const scope = credential.slice(clientEmail.length + 1);
  const toSign = [
    "GOOG4-RSA-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  const ok = createVerify("RSA-SHA256").update(toSign).verify(publicKey, Buffer.from(signature, "hex"));
  if (!ok) throw new GcsError(403, "SignatureDoesNotMatch: the request signature does not match");
}
