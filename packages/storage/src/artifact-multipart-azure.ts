import type { BlockBlobClient } from "@azure/storage-blob";
import { type MultipartTarget, type MultipartUpload, mismatchError } from "./artifact-multipart.js";

/** Block ids: base64 of same-length strings (Azure requires one length per blob). */
export const blockId = (n: number) =>
  Buffer.from(`roder-part-${String(n).padStart(6, "0")}`).toString("base64");

/**
 * Azure block blob in blocks: Put Block per part to a SAS URL (Azure checks each block's Content-MD5), then
 * Put Block List by the host with the content type and the sha256 as metadata. Uncommitted blocks have no
 * abort of their own: `abort` commits an empty list with If-None-Match: * (which discards them) and deletes
 * the empty blob, so nothing stays behind.
 */
export function beginAzureBlocks(
  a: Pick<MultipartTarget, "contentType" | "size" | "partCount"> & {
    blob: BlockBlobClient;
    /** The blob's URL with a write SAS, without the leading "?" of its query. */
    sasQuery: string;
  },
): MultipartUpload {
  const ids = Array.from({ length: a.partCount }, (_, i) => blockId(i + 1));
  return {
    partUrls: ids.map((id) => `${a.blob.url}?comp=block&blockid=${encodeURIComponent(id)}&${a.sasQuery}`),
    partHeaders: {},
    async complete(result) {
      await a.blob.commitBlockList(ids, {
        blobHTTPHeaders: { blobContentType: a.contentType },
        metadata: { sha256: result.sha256 },
        conditions: { ifNoneMatch: "*" },
      });
      const props = await a.blob.getProperties();
      if (props.contentLength !== a.size || props.metadata?.sha256 !== result.sha256) {
        await a.blob.deleteIfExists();
        throw props.contentLength !== a.size
          ? mismatchError("size", a.size, props.contentLength)
          : mismatchError("sha256", result.sha256, props.metadata?.sha256);
      }
    },
    async abort() {
      await a.blob.commitBlockList([], { conditions: { ifNoneMatch: "*" } }).catch(() => {});
      await a.blob.deleteIfExists();
    },
  };
}
