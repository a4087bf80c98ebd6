import { RunnerError } from "@roder/runner-contract";
import {
  type ExportArgs,
  ensureHashes,
  PART_URL_SECONDS,
  type Plan,
  partCountOf,
  type StoreResult,
  sendParts,
  verifyOrDelete,
} from "./artifact-export-common.js";
import { beginS3Multipart } from "./artifact-multipart-s3.js";
import type { PreparedArtifact } from "./artifact-source.js";
import { resolveBucketCredentials } from "./credentials.js";
import { loadS3, loadS3Presigner } from "./load-optional.js";

/** S3 and R2 (and GCS with HMAC keys, through its S3-compatible XML API). */
export async function exportS3(
  a: ExportArgs & {
    bucket: string;
    key: string;
    kind: "s3" | "r2";
    prepared: PreparedArtifact;
    plan: Plan;
    /** Pre-resolved S3-style credentials (GCS HMAC keys through GCS's S3-compatible XML API). */
    creds?: Record<string, string | undefined>;
    /** The scheme of the returned URI (default: kind). */
    scheme?: string;
    /** Whether a completed multipart object's ETag is S3's MD5-of-MD5s (not GCS's). */
    compositeEtag?: boolean;
  },
): Promise<StoreResult> {
  const s3 = await loadS3();
  const v = (a.creds ?? resolveBucketCredentials(a.kind, a.target.credentials, a.env).value) as {
    access_key_id: string;
    secret_access_key: string;
    session_token?: string;
    region?: string;
    endpoint?: string;
    account_id?: string;
  };
  const endpoint =
    a.target.endpoint ??
    v.endpoint ??
    (a.kind === "r2" ? `https://${v.account_id}.r2.cloudflarestorage.com` : undefined);
  const client = new s3.S3Client({
    region: a.target.region ?? v.region ?? (a.kind === "r2" ? "auto" : "us-east-1"),
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: a.target.force_path_style ?? Boolean(endpoint && a.kind === "s3"),
    credentials: {
      accessKeyId: v.access_key_id,
      secretAccessKey: v.secret_access_key,
      ...(v.session_token ? { sessionToken: v.session_token } : {}),
    },
    // The SDK's default flexible checksums put x-amz-checksum-* on presigned URLs (rejected by real S3/R2)
    // and send aws-chunked bodies some S3-compatible servers store verbatim.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    const { bucket: Bucket, key: Key, prepared: p, plan } = a;
    if (plan.multipart) {
      const upload = await beginS3Multipart({
        client,
        kind: a.kind,
        bucket: Bucket,
        key: Key,
        contentType: p.contentType,
        size: p.size,
        partCount: partCountOf(p, plan),
        urlSeconds: PART_URL_SECONDS,
        compositeEtag: a.compositeEtag ?? true,
      });
      await sendParts(a, upload, p, plan);
    } else if (a.target.verify === "after" && p.hashes) {
      // verify "after": upload and hash at once, then check size and ETag (a single PUT's ETag is its MD5).
      const { getSignedUrl } = await loadS3Presigner();
      const url = await getSignedUrl(
        client,
        new s3.PutObjectCommand({ Bucket, Key, ContentType: p.contentType }),
        {
          expiresIn: 900,
          signableHeaders: new Set(["content-type"]),
        },
      );
      if (/x-amz-checksum-/i.test(url))
        throw new RunnerError("internal", "refusing a presigned URL with x-amz-checksum parameters");
      const hashing = p.hashes();
      hashing.catch(() => {});
      try {
        await a.source.uploadDirect!(p.file, { url, headers: { "Content-Type": p.contentType } });
        Object.assign(p, await hashing);
      } catch (error) {
        // The PUT may have landed before the failure: what was not verified does not stay under the key.
        await client.send(new s3.DeleteObjectCommand({ Bucket, Key })).catch(() => {});
        throw error;
      }
      const head = await client.send(new s3.HeadObjectCommand({ Bucket, Key }));
      const md5hex = Buffer.from(p.md5Base64, "base64").toString("hex");
      const etag = head.ETag?.replace(/"/g, "");
      await verifyOrDelete(
        { size: head.ContentLength, digest: "md5 (ETag)", expected: md5hex, got: etag },
        p.size,
        () => client.send(new s3.DeleteObjectCommand({ Bucket, Key })),
      );
    } else {
      await ensureHashes(p);
      const { getSignedUrl } = await loadS3Presigner();
      const put = new s3.PutObjectCommand({
        Bucket,
        Key,
        ContentType: p.contentType,
        ContentMD5: p.md5Base64,
        Metadata: { sha256: p.sha256 },
      });
      const url = await getSignedUrl(client, put, {
        expiresIn: 900,
        signableHeaders: new Set(["content-type", "content-md5"]),
      });
      if (/x-amz-checksum-/i.test(url))
        throw new RunnerError("internal", "refusing a presigned URL with x-amz-checksum parameters");
      await a.source.uploadDirect!(p.file, {
        url,
        headers: { "Content-Type": p.contentType, "Content-MD5": p.md5Base64, "x-amz-meta-sha256": p.sha256 },
      });
      const head = await client.send(new s3.HeadObjectCommand({ Bucket, Key }));
      await verifyOrDelete(
        { size: head.ContentLength, digest: "sha256", expected: p.sha256, got: head.Metadata?.sha256 },
        p.size,
        () => client.send(new s3.DeleteObjectCommand({ Bucket, Key })),
      );
    }
    const { getSignedUrl } = await loadS3Presigner();
    const url = await getSignedUrl(client, new s3.GetObjectCommand({ Bucket, Key }), {
      expiresIn: a.target.url_ttl_seconds,
    });
    return { uri: `${a.scheme ?? a.kind}://${Bucket}/${Key}`, url, bucket: Bucket, key: Key };
  } finally {
    client.destroy();
  }
}
