import { createHash, createSign } from "node:crypto";
import { createHttpClient, isRetryableStatus, RunnerError } from "@roder/runner-contract";
import { checkPartEtags, type MultipartTarget, type MultipartUpload } from "./artifact-multipart.js";

/** RFC 3986 strict encoding (what GCS's canonical requests use). */
const strict = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * A V4 signed URL (GOOG4-RSA-SHA256, UNSIGNED-PAYLOAD) for any XML API method, path-style. The SDK's
 * `getSignedUrl` signs GET, PUT, DELETE and resumable POSTs only; multipart needs POST `?uploads` and
 * POST `?uploadId=`. The host is signed without its port, as the SDK does.
 */
export function gcsSignedUrl(o: {
  method: string;
  origin: string;
  bucket: string;
  key: string;
  query?: Record<string, string>;
  /** Headers the request will carry and the signature covers (lower-case names). */
  headers?: Record<string, string>;
  seconds: number;
  email: string;
  privateKey: string;
  now?: Date;
}): string {
  const origin = new URL(o.origin);
  const path = `/${strict(o.bucket)}/${o.key.split("/").map(strict).join("/")}`;
  const date = (o.now ?? new Date())
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const scope = `${date.slice(0, 8)}/auto/storage/goog4_request`;
  const headers: Record<string, string> = { host: origin.hostname, ...o.headers };
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(";");
  const query: Record<string, string> = {
    ...o.query,
    "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
    "X-Goog-Credential": `${o.email}/${scope}`,
    "X-Goog-Date": date,
    "X-Goog-Expires": String(o.seconds),
    "X-Goog-SignedHeaders": signedHeaders,
  };
  const canonicalQuery = Object.entries(query)
    .map(([k, v]) => [strict(k), strict(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]!.trim().replace(/\s{2,}/g, " ")}\n`).join("");
  const canonicalRequest = [
    o.method,
    path,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    "UNSIGNED-PAYLOAD",
  ].join("\n");
  const toSign = [
    "GOOG4-RSA-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  const signature = createSign("RSA-SHA256").update(toSign).sign(o.privateKey, "hex");
  return `${origin.origin}${path}?${canonicalQuery}&X-Goog-Signature=${signature}`;
}

const xmlText = (xml: string, tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];

/**
 * GCS XML API multipart upload, every request V4-signed by the host with the service account's key (which
 * never leaves the host): initiate (`POST ?uploads`), one signed `PUT ?partNumber&uploadId` URL per part
 * (GCS checks each part's Content-MD5; a part's ETag is its MD5, which the host checks too), complete
 * (`POST ?uploadId`) and abort (`DELETE ?uploadId`). A completed object has a CRC32C but no MD5.
 */
export async function beginGcsMultipart(
  a: MultipartTarget & { origin: string; email: string; privateKey: string },
): Promise<MultipartUpload> {
  const sign = (method: string, query: Record<string, string>, headers?: Record<string, string>) =>
    gcsSignedUrl({
      method,
      origin: a.origin,
      bucket: a.bucket,
      key: a.key,
      query,
      ...(headers ? { headers } : {}),
      seconds: a.urlSeconds,
      email: a.email,
      privateKey: a.privateKey,
    });
  // GCS's XML errors name a <Code> and a <Message>; the signed URL (a credential until it expires) shows in no
  // error, the client keeps only its path. Only the abort is retried: a repeated initiate would leave a second
  // open upload, a repeated complete of a completed upload answers NoSuchUpload.
  const http = createHttpClient({
    providerId: "gcs",
    baseUrl: new URL(a.origin).origin,
    errorFor: (r) =>
      new RunnerError(
        "upload_failed",
        `${r.operation} failed: ${xmlText(r.text, "Code") ?? `HTTP ${r.status}`}: ${(xmlText(r.text, "Message") ?? r.text).slice(0, 300)}`,
        { isRetryable: isRetryableStatus(r.status) },
      ),
  });
  const call = async (method: string, url: string, headers: Record<string, string> = {}, body?: string) => {
    const answer = await http.request({
      method,
      path: url.slice(http.baseUrl.length),
      operation: `GCS multipart ${method}`,
      idempotent: method === "DELETE",
      headers,
      ...(body !== undefined ? { body } : {}),
      buffer: true,
    });
    return answer.text();
  };
  const initiated = await call("POST", sign("POST", { uploads: "" }, { "content-type": a.contentType }), {
    "content-type": a.contentType,
  });
  const uploadId = xmlText(initiated, "UploadId");
  if (!uploadId) throw new RunnerError("upload_failed", "GCS multipart initiate answered no UploadId");
  return {
    partUrls: Array.from({ length: a.partCount }, (_, i) =>
      sign("PUT", { partNumber: String(i + 1), uploadId }),
    ),
    partHeaders: {},
    async complete(result) {
      checkPartEtags(result);
      const body = `<CompleteMultipartUpload>${result.parts
        .map(
          (p) =>
            `<Part><PartNumber>${p.number}</PartNumber><ETag>"${Buffer.from(p.md5Base64, "base64").toString("hex")}"</ETag></Part>`,
        )
        .join("")}</CompleteMultipartUpload>`;
      await call("POST", sign("POST", { uploadId }), { "content-type": "application/xml" }, body);
    },
    async abort() {
      await call("DELETE", sign("DELETE", { uploadId }));
    },
  };
}
