import type { S3Client } from "@aws-sdk/client-s3";
import { RunnerError } from "@roder/runner-contract";
import {
  checkPartEtags,
  type MultipartTarget,
  type MultipartUpload,
  mismatchError,
  multipartEtag,
} from "./artifact-multipart.js";
import { loadS3, loadS3Presigner } from "./load-optional.js";

/**
 * S3 (and R2, and GCS through HMAC keys) multipart upload: CreateMultipartUpload by the host, one presigned
 * UploadPart URL per part, CompleteMultipartUpload by the host after it checked the parts. S3 checks each
 * part's Content-MD5; where the part ETag is its MD5 (not SSE-KMS/SSE-C, not R2) the host checks the ETags
 * as well, which also covers servers that ignore Content-MD5.
 */
export async function beginS3Multipart(
  a: MultipartTarget & {
    client: S3Client;
    kind: "s3" | "r2";
    /** Check a completed object's "-N" ETag as S3's MD5 of the part MD5s (not GCS through HMAC). */
    compositeEtag: boolean;
  },
): Promise<MultipartUpload> {
  const s3 = await loadS3();
  const { getSignedUrl } = await loadS3Presigner();
  const { client, bucket: Bucket, key: Key } = a;
  const created = await client.send(
    new s3.CreateMultipartUploadCommand({ Bucket, Key, ContentType: a.contentType }),
  );
  const UploadId = created.UploadId;
  if (!UploadId) throw new RunnerError("upload_failed", "CreateMultipartUpload answered no UploadId");
  const abort = async () => {
    await client.send(new s3.AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
  };
  const etagIsMd5 =
    a.kind === "s3" &&
    !created.SSECustomerAlgorithm &&
    !String(created.ServerSideEncryption ?? "").startsWith("aws:kms");
  let partUrls: string[];
  try {
    partUrls = await Promise.all(
      Array.from({ length: a.partCount }, (_, i) =>
        getSignedUrl(client, new s3.UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1 }), {
          expiresIn: a.urlSeconds,
        }),
      ),
    );
    if (partUrls.some((u) => /x-amz-checksum-/i.test(u)))
      throw new RunnerError("internal", "refusing a presigned URL with x-amz-checksum parameters");
  } catch (e) {
    await abort().catch(() => {});
    throw e;
  }
  return {
    partUrls,
    partHeaders: {},
    abort,
    async complete(result) {
      if (etagIsMd5) checkPartEtags(result);
      const done = await client.send(
        new s3.CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId,
          MultipartUpload: {
            Parts: result.parts.map((p) => ({
              PartNumber: p.number,
              ETag: `"${p.etag ?? Buffer.from(p.md5Base64, "base64").toString("hex")}"`,
            })),
          },
        }),
      );
      // Committed: from here a failed check deletes the object (the upload no longer exists).
      const head = await client.send(new s3.HeadObjectCommand({ Bucket, Key }));
      const etag = (head.ETag ?? done.ETag)?.replace(/"/g, "");
      const expected = multipartEtag(result);
      const bad =
        head.ContentLength !== a.size
          ? mismatchError("size", a.size, head.ContentLength)
          : a.compositeEtag && etagIsMd5 && etag?.includes("-") && etag !== expected
            ? mismatchError("multipart ETag", expected, etag)
            : undefined;
      if (bad) {
        await client.send(new s3.DeleteObjectCommand({ Bucket, Key })).catch(() => {});
        throw bad;
      }
    },
  };
}
