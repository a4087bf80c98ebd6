import { createHash } from "node:crypto";
import { Agent, request } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { RunnerError } from "@roder/runner-contract";
import { type PartUploadJob, type PartUploadResult, partCount } from "./artifact-parts.js";

/** PUTs one part from memory (its chunks as read, not copied into one buffer); resolves with the ETag. */
function putPart(
  url: string,
  body: Buffer[],
  headers: Record<string, string>,
  agents: { http: Agent; https: HttpsAgent },
  signal?: AbortSignal,
): Promise<{ status: number; etag?: string; text: string }> {
  const u = new URL(url);
  const send = u.protocol === "https:" ? httpsRequest : request;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: "PUT",
        agent: u.protocol === "https:" ? agents.https : agents.http,
        headers: { ...headers, "content-length": String(body.reduce((n, c) => n + c.length, 0)) },
        ...(signal ? { signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          if (chunks.length < 8) chunks.push(c);
        });
        res.on("error", reject);
        res.on("end", () => {
          const etag = res.headers.etag?.replace(/"/g, "");
          resolve({
            status: res.statusCode ?? 0,
            ...(etag ? { etag } : {}),
            text: Buffer.concat(chunks).toString("utf8").slice(0, 300),
          });
        });
      },
    );
    req.on("error", reject);
    for (const c of body) req.write(c);
    req.end();
  });
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * The stream path's uploader: reads `body` once, hashing it (sha256 of the whole, MD5 of each part) as the
 * bytes arrive, and PUTs each part to its signed URL with its Content-MD5 as soon as it is complete, up to
 * `parallelism` at once, while the next part is read. Memory: (parallelism + 1) parts. A part answered 5xx,
 * 408, 429 or cut is retried twice; any other failure rejects after the parts in flight have ended, so that
 * nothing is still sending when the caller aborts the upload.
 */
export async function uploadStreamParts(
  body: Readable,
  job: PartUploadJob,
  signal?: AbortSignal,
): Promise<PartUploadResult> {
  const count = partCount(job.size, job.partSize);
  if (job.urls.length !== count)
    throw new RunnerError("internal", `part plan has ${job.urls.length} URLs for ${count} parts`);
  const agents = {
    http: new Agent({ keepAlive: true, maxSockets: job.parallelism }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: job.parallelism }),
  };
  const sha = createHash("sha256");
  const parts: PartUploadResult["parts"] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let total = 0;
  const send = (n: number, data: Buffer[], size: number, md5: Buffer) => {
    const md5Base64 = md5.toString("base64");
    const p = (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await putPart(
            job.urls[n - 1]!,
            data,
            { ...job.headers, "content-md5": md5Base64 },
            agents,
            signal,
          );
          if (r.status >= 200 && r.status < 300) {
            parts.push({ number: n, md5Base64, ...(r.etag ? { etag: r.etag } : {}) });
            job.onPartDone?.(size);
            return;
          }
          if (!retryable(r.status) || attempt >= 3)
            throw new RunnerError("upload_failed", `part ${n} answered HTTP ${r.status}: ${r.text}`);
        } catch (e) {
          if (RunnerError.isInstance(e) || signal?.aborted) throw e;
          if (attempt >= 3)
            throw new RunnerError("upload_failed", `part ${n} failed: ${(e as Error).message}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    })().then(
      () => void inFlight.delete(p),
      (e) => {
        inFlight.delete(p);
        failure ??= e;
      },
    );
    inFlight.add(p);
  };
  try {
    let n = 1;
    let md5 = createHash("md5");
    let chunks: Buffer[] = [];
    let filled = 0;
    const flush = async () => {
      send(n, chunks, filled, md5.digest());
      n += 1;
      md5 = createHash("md5");
      chunks = [];
      filled = 0;
      while (inFlight.size >= job.parallelism && !failure) await Promise.race(inFlight);
    };
    for await (const c of body) {
      if (failure) break;
      let chunk = c as Buffer;
      sha.update(chunk);
      total += chunk.length;
      while (chunk.length > 0) {
        const take = Math.min(chunk.length, job.partSize - filled);
        const piece = take === chunk.length ? chunk : chunk.subarray(0, take);
        md5.update(piece);
        chunks.push(piece);
        filled += take;
        chunk = chunk.subarray(take);
        if (filled === job.partSize) await flush();
      }
    }
    if (!failure && (filled > 0 || n === 1)) await flush();
    await Promise.all(inFlight);
    if (failure) throw failure;
    if (total !== job.size || parts.length !== count)
      throw new RunnerError(
        "upload_failed",
        `the artifact changed while it was read: ${total} bytes in ${parts.length} parts, expected ${job.size} in ${count}`,
      );
    parts.sort((a, b) => a.number - b.number);
    return { sha256: sha.digest("hex"), parts };
  } catch (e) {
    body.destroy();
    await Promise.all(inFlight);
    throw e;
  } finally {
    agents.http.destroy();
    agents.https.destroy();
  }
}
