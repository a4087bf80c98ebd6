import { InvalidSecretError, secretEnvName } from "@roder/runner-contract";
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
import { beginGcsMultipart } from "./artifact-multipart-gcs.js";
import type { PreparedArtifact } from "./artifact-source.js";
import { exportS3 } from "./artifact-store-s3.js";
import { resolveBucketCredentials } from "./credentials.js";
import { loadGcs } from "./load-optional.js";

/** Google Cloud Storage: V4 signed URLs from a service account (XML multipart for large files), or HMAC keys. */
export async function exportGcs(
  a: ExportArgs & { bucket: string; key: string; prepared: PreparedArtifact; plan: Plan },
): Promise<StoreResult> {
  const cred = resolveBucketCredentials("gcs", a.target.credentials, a.env).value as {
    service_account_json?: string;
    hmac_access_id?: string;
    hmac_secret?: string;
  };
  if (!cred.service_account_json) {
    // HMAC keys sign S3-style (SigV4) requests against GCS's XML API: the S3 path does the rest.
    return exportS3({
      ...a,
      kind: "s3",
      scheme: "gs",
      compositeEtag: false,
      creds: {
        access_key_id: cred.hmac_access_id,
        secret_access_key: cred.hmac_secret,
        region: a.target.region ?? "auto",
        endpoint: a.target.endpoint ?? "https://storage.googleapis.com",
      },
    });
  }
  let sa: { client_email?: string; private_key?: string; project_id?: string };
  try {
    sa = JSON.parse(cred.service_account_json);
  } catch {
    sa = {};
  }
  if (!sa.client_email || !sa.private_key)
    throw new InvalidSecretError({
      secretId: a.target.credentials.id,
      variables: [secretEnvName(a.target.credentials.id, "service_account_json")],
      reason: "the service-account JSON needs client_email and private_key",
    });
  const gcs = await loadGcs();
  const storage = new gcs.Storage({
    credentials: { client_email: sa.client_email, private_key: sa.private_key },
    ...(sa.project_id ? { projectId: sa.project_id } : {}),
    ...(a.target.endpoint ? { apiEndpoint: a.target.endpoint } : {}),
  });
  const file = storage.bucket(a.bucket).file(a.key);
  const p = a.prepared;
  const sign = async (action: "read" | "write", seconds: number, extra: object = {}) =>
    (await file.getSignedUrl({ version: "v4", action, expires: Date.now() + seconds * 1000, ...extra }))[0];
  if (a.plan.multipart) {
    const upload = await beginGcsMultipart({
      origin: a.target.endpoint ?? "https://storage.googleapis.com",
      bucket: a.bucket,
      key: a.key,
      contentType: p.contentType,
      size: p.size,
      partCount: partCountOf(p, a.plan),
      urlSeconds: PART_URL_SECONDS,
      email: sa.client_email,
      privateKey: sa.private_key,
    });
    await sendParts(a, upload, p, a.plan);
    // Metadata is mutable in GCS: the sha256 computed in the same read is recorded on the object.
    await file.setMetadata({ metadata: { sha256: p.sha256 } }).catch(async (e: unknown) => {
      await file.delete({ ignoreNotFound: true }).catch(() => {});
      throw e;
    });
  } else {
    await ensureHashes(p);
    const url = await sign("write", 900, {
      contentType: p.contentType,
      contentMd5: p.md5Base64,
      extensionHeaders: { "x-goog-meta-sha256": p.sha256 },
    });
    await a.source.uploadDirect!(p.file, {
      url,
      headers: { "Content-Type": p.contentType, "Content-MD5": p.md5Base64, "x-goog-meta-sha256": p.sha256 },
    });
  }
  const [md] = await file.getMetadata();
  const size = md.size === undefined ? undefined : Number(md.size);
  const sha = (md.metadata as Record<string, unknown> | undefined)?.sha256;
  await verifyOrDelete(
    { size, digest: "sha256", expected: p.sha256, got: sha === undefined ? undefined : String(sha) },
    p.size,
    () => file.delete({ ignoreNotFound: true }),
  );
  return {
    uri: `gs://${a.bucket}/${a.key}`,
    url: await sign("read", a.target.url_ttl_seconds),
    bucket: a.bucket,
    key: a.key,
  };
}
