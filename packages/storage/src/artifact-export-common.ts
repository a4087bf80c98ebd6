import {
  type EnvSource,
  type RunnerArtifactExportRequest,
  RunnerError,
  type RunnerExportProgress,
} from "@roder/runner-contract";
import type { ArtifactTargetConfig } from "./artifact-export.js";
import { type MultipartUpload, orAbort } from "./artifact-multipart.js";
import type { ArtifactSource, PreparedArtifact } from "./artifact-source.js";
import { uploadStreamParts } from "./artifact-stream-parts.js";

/** What every store's exporter shares: the plan, parts through the source or the host, and verify-or-delete. */

export function mismatch(
  what: string,
  expected: string | number,
  got: string | number | undefined,
): RunnerError {
  return new RunnerError(
    "checksum_mismatch",
    `artifact ${what} mismatch after upload (expected ${expected}, got ${got ?? "nothing"}); the object was deleted`,
  );
}

/**
 * The one verification step of every store: what the store holds under the key must have the artifact's size
 * and digest, else the object is deleted (nothing unverified stays under the key) and the mismatch thrown.
 */
export async function verifyOrDelete(
  held: { size: number | undefined; digest: string; expected: string; got: string | undefined },
  size: number,
  remove: () => Promise<unknown>,
): Promise<void> {
  if (held.size === size && held.got === held.expected) return;
  await remove().catch(() => {});
  throw held.size !== size
    ? mismatch("size", size, held.size)
    : mismatch(held.digest, held.expected, held.got);
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
  /** Progress of the export (see `RunnerExportOptions.onProgress`); a listener that throws is ignored. */
  onProgress?: (progress: RunnerExportProgress) => void;
  /** Set by the driver: counts each part the store acknowledged. */
  onPartDone?: (bytes: number) => void;
}

/** What a store's exporter answers: the object's URI, a signed download URL, its bucket and key. */
export interface StoreResult {
  uri: string;
  url: string;
  bucket: string;
  key: string;
}

/** How the bytes travel: from the source (direct) or through the host (stream); one PUT or parts. */
export interface Plan {
  direct: boolean;
  multipart: boolean;
  partSize: number;
}

/** Fills in deferred hashes (a single PUT that signs its Content-MD5 needs them before it starts). */
export async function ensureHashes(p: PreparedArtifact): Promise<void> {
  if (p.hashes && !p.sha256) Object.assign(p, await p.hashes());
}

/**
 * Sends the parts of an opened multipart upload, from the source (PART_SCRIPT) or through the host, checks
 * them and completes; any failure aborts the upload. Records the sha256 computed in the same read.
 */
export async function sendParts(a: ExportArgs, upload: MultipartUpload, p: PreparedArtifact, plan: Plan) {
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
      ...(a.onPartDone ? { onPartDone: a.onPartDone } : {}),
      ...(a.signal ? { signal: a.signal } : {}),
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

export const partCountOf = (p: PreparedArtifact, plan: Plan) =>
  Math.max(1, Math.ceil(p.size / plan.partSize));

/** The most parts an export uses (S3 allows 10,000; a command's environment holds this many URLs easily). */
export const MAX_PARTS = 1000;

/** The stream path's bound on the parts it holds in flight (the part being read comes on top). */
export const STREAM_BUFFER_BYTES = 64 * 1024 * 1024;

/** Lifetime of the signed part URLs: long enough for a large upload at a slow rate. */
export const PART_URL_SECONDS = 3600;
