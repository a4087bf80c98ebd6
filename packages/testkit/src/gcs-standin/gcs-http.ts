import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { crc32cBase64 } from "./crc32c.js";
import type { GcsObject } from "./gcs-store.js";

/** A JSON answer. */
export function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      "content-type": "application/json; charset=UTF-8",
      "content-length": Buffer.byteLength(text),
      ...headers,
    })
    .end(text);
}

/** A request's whole body. */
export async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** An object's bytes (a Range gives 206 or 416), with `x-goog-hash` and the generation. */
export function sendMedia(req: IncomingMessage, res: ServerResponse, o: GcsObject): void {
  const md5 = createHash("md5").update(o.data).digest("base64");
  const headers: Record<string, string> = {
    "content-type": o.contentType,
    "x-goog-hash": o.composite
      ? `crc32c=${crc32cBase64(o.data)}`
      : `crc32c=${crc32cBase64(o.data)},md5=${md5}`,
    "x-goog-generation": o.generation,
    "x-goog-stored-content-length": String(o.data.length),
    etag: o.composite ? `"C${o.generation}"` : md5,
    "accept-ranges": "bytes",
  };
  const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ""));
  if (range && (range[1] || range[2])) {
    const size = o.data.length;
    let start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
    let end = range[1] && range[2] ? Number(range[2]) : size - 1;
    if (start >= size) {
      res.writeHead(416, { "content-range": `bytes */${size}` }).end();
      return;
    }
    end = Math.min(end, size - 1);
    start = Math.max(0, start);
    const part = o.data.subarray(start, end + 1);
    res
      .writeHead(206, {
        ...headers,
        "content-range": `bytes ${start}-${end}/${size}`,
        "content-length": String(part.length),
      })
      .end(part);
    return;
  }
  res.writeHead(200, { ...headers, "content-length": String(o.data.length) }).end(o.data);
}

/** An XML API answer. */
export function xml(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  const text = `<?xml version='1.0' encoding='UTF-8'?>${body}`;
  res
    .writeHead(status, {
      "content-type": "application/xml; charset=UTF-8",
      "content-length": Buffer.byteLength(text),
      ...headers,
    })
    .end(text);
}
export const xmlError = (res: ServerResponse, status: number, code: string, message: string) =>
  xml(res, status, `<Error><Code>${code}</Code><Message>${message}</Message></Error>`);

/** A resumable upload not finished yet: 308 with the bytes stored (200 + override header when asked). */
export function incomplete(req: IncomingMessage, res: ServerResponse, size: number): void {
  const headers: Record<string, string> = size > 0 ? { range: `bytes=0-${size - 1}` } : {};
  if (req.headers["x-guploader-no-308"] === "yes")
    res.writeHead(200, { ...headers, "x-http-status-code-override": "308", "content-length": "0" }).end();
  else res.writeHead(308, { ...headers, "content-length": "0" }).end();
}
