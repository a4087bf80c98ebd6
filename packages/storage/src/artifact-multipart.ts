import { createHash } from "node:crypto";
import { RunnerError } from "@roder/runner-contract";
import type { PartUploadResult } from "./artifact-parts.js";

/**
 * A multipart upload opened by the host: signed URLs for its parts (short-lived, one object, one upload),
 * and the host-side steps that finish it (verify, then commit) or abort it. Nothing is visible under the key
 * before `complete`; `abort` leaves no upload and no parts behind.
 */
export interface MultipartUpload {
  partUrls: string[];
  /** Headers each part request carries (besides Content-Length and Content-MD5). */
  partHeaders: Record<string, string>;
  /** Checks what the parts' uploader reported, commits the object and checks its size. */
  complete(result: PartUploadResult): Promise<void>;
  abort(): Promise<void>;
}

/** What every store's multipart upload is opened for: one object, its type and size, cut in `partCount` parts. */
export interface MultipartTarget {
  bucket: string;
  key: string;
  contentType: string;
  size: number;
  partCount: number;
  /** How long each part URL stays valid. */
  urlSeconds: number;
}

export const mismatchError = (what: string, expected: string | number, got: string | number | undefined) =>
  new RunnerError(
    "checksum_mismatch",
    `artifact ${what} mismatch after upload (expected ${expected}, got ${got ?? "nothing"}); nothing was kept`,
  );

/** Each part's ETag, where the store gives the part's MD5 as its ETag, must be the MD5 that was sent. */
export function checkPartEtags(result: PartUploadResult): void {
  for (const p of result.parts) {
    const md5hex = Buffer.from(p.md5Base64, "base64").toString("hex");
    if (p.etag === undefined) throw mismatchError(`part ${p.number} ETag`, md5hex, undefined);
    if (p.etag.replace(/"/g, "") !== md5hex) throw mismatchError(`part ${p.number} ETag`, md5hex, p.etag);
  }
}

/** The ETag S3 and GCS give a completed multipart object: MD5 of the parts' MD5s, "-", the part count. */
export function multipartEtag(result: PartUploadResult): string {
  const md5 = createHash("md5");
  for (const p of result.parts) md5.update(Buffer.from(p.md5Base64, "base64"));
  return `${md5.digest("hex")}-${result.parts.length}`;
}

/** Runs `body`; on any failure aborts the upload (best effort) and rethrows the first error. */
export async function orAbort<T>(upload: MultipartUpload, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    await upload.abort().catch(() => {});
    throw e;
  }
}
