import { randomBytes } from "node:crypto";
import {
  CancelledError,
  InvalidDestinationConfigError,
  parseMountUri,
  type RunnerArtifactExportResult,
  type RunnerExportProgress,
  RunnerSecretRefSchema,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { z } from "zod";
import { type ExportArgs, MAX_PARTS, type Plan, type StoreResult } from "./artifact-export-common.js";
import type { ArtifactSource } from "./artifact-source.js";
import { exportAzure } from "./artifact-store-azure.js";
import { exportGcs } from "./artifact-store-gcs.js";
import { exportS3 } from "./artifact-store-s3.js";

export type { ExportArgs } from "./artifact-export-common.js";

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
  const report = (p: RunnerExportProgress) => {
    try {
      args.onProgress?.(p);
    } catch {
      // A progress listener never breaks an export.
    }
  };
  if (args.signal?.aborted) throw new CancelledError({ operation: "exportArtifact" });
  report({ phase: "preparing", bytes: 0 });
  // Hashes are deferred wherever they can be computed in the same read as the upload: the stream path, the
  // direct path's parts, and verify "after". Single PUTs with verify "before" ask for them afterwards.
  const prepared = await args.source.prepare(args.path, args.request.recursive, {
    deferHashes:
      !direct ||
      args.source.uploadParts !== undefined ||
      (args.target.verify === "after" && (target.kind === "s3" || target.kind === "r2")),
  });
  try {
    const total = prepared.size;
    let sent = 0;
    report({ phase: "uploading", bytes: 0, total });
    const acknowledged = (bytes: number) => {
      sent = Math.min(total, sent + bytes);
      report({ phase: sent === total ? "verifying" : "uploading", bytes: sent, total });
    };
    // A single PUT reports once it has landed; parts as the store acknowledges each.
    const source: ArtifactSource = Object.create(args.source);
    if (args.source.uploadDirect)
      source.uploadDirect = async (file, upload) => {
        await args.source.uploadDirect!(file, upload, args.signal);
        acknowledged(total);
      };
    const tracked: ExportArgs = {
      ...args,
      source,
      onPartDone: args.onProgress ? acknowledged : undefined,
    };
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
    let out: StoreResult;
    if (target.kind === "s3" || target.kind === "r2") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportS3({ ...tracked, bucket: target.bucket, key, kind: target.kind, prepared, plan });
    } else if (target.kind === "azure_blob") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportAzure({
        ...tracked,
        container: target.container,
        account: target.account,
        endpoint: target.endpoint,
        key,
        prepared,
        plan,
      });
    } else if (target.kind === "gcs") {
      const key = `${prefix(target.prefix)}${id}/${prepared.name}`;
      out = await exportGcs({ ...tracked, bucket: target.bucket, key, prepared, plan });
    } else {
      throw new UnsupportedCapabilityError({
        providerId: args.providerId,
        capability: `artifact_export.${target.kind}`,
        message: `artifact export to ${target.kind} is not supported`,
      });
    }
    report({ phase: "done", bytes: total, total });
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
  } catch (error) {
    // Aborted: the uploads in flight were stopped and a multipart upload aborted (nothing under the key).
    if (args.signal?.aborted) throw new CancelledError({ operation: "exportArtifact" }, { cause: error });
    throw error;
  } finally {
    await prepared.cleanup();
  }
}
