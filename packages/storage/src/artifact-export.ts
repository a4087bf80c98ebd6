import { randomBytes } from "node:crypto";
import {
  type EnvSource,
  InvalidDestinationConfigError,
  InvalidSecretError,
  parseMountUri,
  type RunnerArtifactExportRequest,
  type RunnerArtifactExportResult,
  RunnerError,
  RunnerSecretRefSchema,
  secretEnvName,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { z } from "zod";
import { type MultipartUpload, orAbort } from "./artifact-multipart.js";
import { beginAzureBlocks } from "./artifact-multipart-azure.js";
import { beginGcsMultipart } from "./artifact-multipart-gcs.js";
import { beginS3Multipart } from "./artifact-multipart-s3.js";
import type { ArtifactSource, PreparedArtifact } from "./artifact-source.js";
import { uploadStreamParts } from "./artifact-stream-parts.js";
import { resolveBucketCredentials } from "./credentials.js";
import { loadAzure, loadGcs, loadS3, loadS3Presigner } from "./load-optional.js";

/** The `artifacts` section of a destination config: where exports go. No secret: the credentials are a ref. */
export const ArtifactTargetConfigSchema = z
  .object({
    /** `s3://bucket/prefix`, `r2://bucket/prefix`, `gs://bucket/prefix`, `azure://account/container/prefix`. */
    uri: z.string(),
    credentials: RunnerSecretRefSchema,
    /** S3-compatible endpoint (else AWS, or R2 from the account id in the secret); GCS: the API endpoint. */
    endpoint: z.string().url().optional(),
    region: z.string().optional(),
    force_path_style: z.boolean().optional(),
    /** Lifetime of the download URL. */
    url_ttl_seconds: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .default(3600),
    /** `direct`: the sandbox uploads to a signed URL; `stream`: through the host; `auto`: direct when possible. */
    mode: z.enum(["auto", "direct", "stream"]).default("auto"),
    /**
     * Direct S3/R2 uploads: `before` (default) hashes first and signs Content-MD5 and the sha256, so the store
     * refuses a corrupted body before it is visible; `after` hashes while uploading (about the raw upload's
     * speed) and checks size and ETag (the MD5) afterwards, deleting a mismatch. `after` is wrong for SSE-KMS
     * buckets, whose ETag is not the MD5.
     */
    verify: z.enum(["before", "after"]).default("before"),
    /**
     * Files larger than one part go up as a multipart upload (S3/R2/GCS XML multipart, Azure blocks): the
     * direct path from the source with parallel curls, the stream path from the host. Each part carries its
     * Content-MD5. S3, R2 and GCS need parts of at least 5 MiB.
     */
    part_size_mib: z.number().int().min(5).max(5120).default(16),
    /** Part uploads in flight at once. */
    parallelism: z.number().int().min(1).max(64).default(8),
  })
  .strict();
export type ArtifactTargetConfig = z.infer<typeof ArtifactTargetConfigSchema>;

export function parseArtifactTarget(providerId: string, config: unknown): ArtifactTargetConfig {
  const r = ArtifactTargetConfigSchema.safeParse(config);
  if (!r.success)
    throw new InvalidDestinationConfigError({
      providerId,
      message: `artifacts: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    });
  const kind = parseMountUri(r.data.uri).kind;
  if (kind === "box_storage" || kind === "provider_native")
    throw new InvalidDestinationConfigError({
      providerId,
      message: `artifacts: ${kind} cannot hold artifacts`,
    });
  if (r.data.verify === "after" && kind !== "s3" && kind !== "r2")
    throw new InvalidDestinationConfigError({
      providerId,
      message: `artifacts: verify "after" checks the ETag of a single S3/R2 PUT; ${kind} supports "before" only`,
    });
  return r.data;
}

function mismatch(what: string, expected: string | number, got: string | number | undefined): RunnerError {
  return new RunnerError(
    "checksum_mismatch",
    `artifact ${what} mismatch after upload (expected ${expected}, got ${got ?? "nothing"}); the object was deleted`,
  );
}

export interface ExportArgs {
  providerId: string;
  target: ArtifactTargetConfig;
  env?: EnvSource;
  source: ArtifactSource;
  request: RunnerArtifactExportRequest;
  /** The confined path of the artifact where the source lives. */
  path: string;
  signal?: AbortSignal;
}

/**
 * Exports a file (or a `.tar.gz` of a directory) to the destination's artifact bucket and returns its URI, a
 * time-limited download URL and metadata (size, sha256, content type, bucket, key, path used). Nothing
 * half-written is left under the final key: single PUTs and multipart uploads only become visible when
 * complete, a failed multipart upload is aborted, and an object whose checksum does not match is deleted.
 */
export async function exportArtifact(args: ExportArgs): Promise<RunnerArtifactExportResult> {
  const target = parseMountUri(args.target.uri);
  if (args.target.mode === "direct" && !args.source.uploadDirect)
    throw new UnsupportedCapabilityError({
      providerId: args.providerId,
      capability: "artifact_export.direct",
    });
  const direct = args.target.mode !== "stream" && args.source.uploadDirect !== undefined;
  // Hashes are deferred wherever they can be computed in the same read as the upload: the stream path, the
  // direct path's parts, and verify "after". Single PUTs with verify "before" ask for them afterwards.
  const prepared = await args.source.prepare(args.path, args.request.recursive, {
    deferHashes:
      !direct ||
      args.source.uploadParts !== undefined ||
      (args.target.verify === "after" && (target.kind === "s3" || target.kind === "r2")),
  });
  try {
    const id = `${new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z")}-${randomBytes(4).toString("hex")}`;
    // At most MAX_PARTS parts (their signed URLs travel in one command's environment): larger parts beyond.
    const MiB = 1024 * 1024;
    const partSize = Math.max(args.target.part_size_mib, Math.ceil(prepared.size / MAX_PARTS / MiB)) * MiB;
    const plan: Plan = {
      direct,
      multipart: !direct || (args.source.uploadParts !== undefined && prepared.size > partSize),
      partSize,
    };
    const prefix = (p: string | undefined) => (p ? `${p.replace(/\/?$/, "/")}` : "");
    let out: { uri: string; url: string; bucket: string; key: string };
    if (target.kind === "s3" || target.kind === "r2") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportS3({ ...args, bucket: target.bucket, key, kind: target.kind, prepared, plan });
    } else if (target.kind === "azure_blob") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportAzure({
        ...args,
        container: target.container,
        account: target.account,
        endpoint: target.endpoint,
        key,
        prepared,
        plan,
      });
    } else if (target.kind === "gcs") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportGcs({ ...args, bucket: target.bucket, key, prepared, plan });
    } else {
      throw new UnsupportedCapabilityError({
        providerId: args.providerId,
        capability: `artifact_export.${target.kind}`,
        message: `artifact export to ${target.kind} is not supported`,
      });
    }
    return {
      path: args.request.path,
      artifact_id: out.uri,
      url: out.url,
      metadata: {
        size: prepared.size,
        sha256: prepared.sha256,
        content_type: prepared.contentType,
        bucket: out.bucket,
        key: out.key,
        transfer: direct ? "direct" : "stream",
        ...(plan.multipart ? { parts: Math.max(1, Math.ceil(prepared.size / partSize)) } : {}),
        url_expires_at: new Date(Date.now() + args.target.url_ttl_seconds * 1000).toISOString(),
      },
    };
  } finally {
    await prepared.cleanup();
  }
}

/** How the bytes travel: from the source (direct) or through the host (stream); one PUT or parts. */
interface Plan {
  direct: boolean;
  multipart: boolean;
  partSize: number;
}

/** Fills in deferred hashes (a single PUT that signs its Content-MD5 needs them before it starts). */
async function ensureHashes(p: PreparedArtifact): Promise<void> {
  if (p.hashes && !p.sha256) Object.assign(p, await p.hashes());
}

/**
 * Sends the parts of an opened multipart upload, from the source (PART_SCRIPT) or through the host, checks
 * them and completes; any failure aborts the upload. Records the sha256 computed in the same read.
 */
async function sendParts(a: ExportArgs, upload: MultipartUpload, p: PreparedArtifact, plan: Plan) {
  await orAbort(upload, async () => {
    const job = {
      size: p.size,
      partSize: plan.partSize,
      // Through the host, the parts in flight are in memory: at most STREAM_BUFFER_BYTES of them.
      parallelism: plan.direct
        ? a.target.parallelism
        : Math.max(1, Math.min(a.target.parallelism, Math.floor(STREAM_BUFFER_BYTES / plan.partSize))),
      urls: upload.partUrls,
      headers: upload.partHeaders,
    };
    const result = plan.direct
      ? await a.source.uploadParts!(p.file, job)
      : await uploadStreamParts(await a.source.openStream(p.file), job, a.signal);
    // A source that hashed beforehand: the bytes sent must be the bytes it hashed.
    if (p.sha256 && result.sha256 !== p.sha256) throw mismatch("sha256", p.sha256, result.sha256);
    await upload.complete(result);
    p.sha256 = result.sha256;
  });
}

const partCountOf = (p: PreparedArtifact, plan: Plan) => Math.max(1, Math.ceil(p.size / plan.partSize));

async function exportS3(
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
) {
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
      if (head.ContentLength !== p.size || etag !== md5hex) {
        await client.send(new s3.DeleteObjectCommand({ Bucket, Key })).catch(() => {});
        throw head.ContentLength !== p.size
          ? mismatch("size", p.size, head.ContentLength)
          : mismatch("md5 (ETag)", md5hex, etag);
      }
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
      if (head.ContentLength !== p.size || head.Metadata?.sha256 !== p.sha256) {
        await client.send(new s3.DeleteObjectCommand({ Bucket, Key })).catch(() => {});
        throw head.ContentLength !== p.size
          ? mismatch("size", p.size, head.ContentLength)
          : mismatch("sha256", p.sha256, head.Metadata?.sha256);
      }
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

/** The most parts an export uses (S3 allows 10,000; a command's environment holds this many URLs easily). */
const MAX_PARTS = 1000;

/** The stream path's bound on the parts it holds in flight (the part being read comes on top). */
const STREAM_BUFFER_BYTES = 64 * 1024 * 1024;

/** Lifetime of the signed part URLs: long enough for a large upload at a slow rate. */
const PART_URL_SECONDS = 3600;

async function exportAzure(
  a: ExportArgs & {
    container: string;
    account: string;
    endpoint?: string | undefined;
    key: string;
    prepared: PreparedArtifact;
    plan: Plan;
  },
) {
  const az = await loadAzure();
  const cred = resolveBucketCredentials("azure_blob", a.target.credentials, a.env).value as {
    account?: string;
    key?: string;
    connection_string?: string;
  };
  let account = cred.account ?? a.account;
  let key = cred.key;
  let endpoint = a.target.endpoint ?? a.endpoint ?? `https://${account}.blob.core.windows.net`;
  if (cred.connection_string) {
    const parts = Object.fromEntries(
      cred.connection_string
        .split(";")
        .filter(Boolean)
        .map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]),
    );
    account = parts.AccountName ?? account;
    key = parts.AccountKey ?? key;
    endpoint = a.target.endpoint ?? parts.BlobEndpoint ?? endpoint;
  }
  if (!key)
    throw new UnsupportedCapabilityError({
      providerId: a.providerId,
      capability: "artifact_export.azure_blob",
      message:
        "Azure artifact export needs an account key (to sign SAS URLs): set the secret's key or connection_string",
    });
  const shared = new az.StorageSharedKeyCredential(account, key);
  const service = new az.BlobServiceClient(endpoint, shared);
  const blob = service.getContainerClient(a.container).getBlockBlobClient(a.key);
  const sas = (permissions: string, seconds: number) =>
    az
      .generateBlobSASQueryParameters(
        {
          containerName: a.container,
          blobName: a.key,
          permissions: az.BlobSASPermissions.parse(permissions),
          expiresOn: new Date(Date.now() + seconds * 1000),
        },
        shared,
      )
      .toString();
  const p = a.prepared;
  if (a.plan.multipart) {
    const upload = beginAzureBlocks({
      blob,
      sasQuery: sas("cw", PART_URL_SECONDS),
      contentType: p.contentType,
      size: p.size,
      partCount: partCountOf(p, a.plan),
    });
    await sendParts(a, upload, p, a.plan);
  } else {
    await ensureHashes(p);
    await a.source.uploadDirect!(p.file, {
      url: `${blob.url}?${sas("cw", 900)}`,
      headers: {
        "x-ms-blob-type": "BlockBlob",
        "Content-MD5": p.md5Base64,
        "x-ms-blob-content-type": p.contentType,
        "x-ms-meta-sha256": p.sha256,
      },
    });
  }
  const props = await blob.getProperties();
  if (props.contentLength !== p.size || props.metadata?.sha256 !== p.sha256) {
    await blob.deleteIfExists();
    throw props.contentLength !== p.size
      ? mismatch("size", p.size, props.contentLength)
      : mismatch("sha256", p.sha256, props.metadata?.sha256);
  }
  return {
    uri: `azure://${account}/${a.container}/${a.key}`,
    url: `${blob.url}?${sas("r", a.target.url_ttl_seconds)}`,
    bucket: a.container,
    key: a.key,
  };
}

async function exportGcs(
  a: ExportArgs & { bucket: string; key: string; prepared: PreparedArtifact; plan: Plan },
) {
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
  if (size !== p.size || sha !== p.sha256) {
    await file.delete({ ignoreNotFound: true }).catch(() => {});
    throw size !== p.size ? mismatch("size", p.size, size) : mismatch("sha256", p.sha256, String(sha));
  }
  return {
    uri: `gs://${a.bucket}/${a.key}`,
    url: await sign("read", a.target.url_ttl_seconds),
    bucket: a.bucket,
    key: a.key,
  };
}
