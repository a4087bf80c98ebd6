import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { body, incomplete, json, xml, xmlError } from "./gcs-http.js";
import { GcsError, type GcsStore } from "./gcs-store.js";

/** JSON API uploads: `uploadType=media`, `multipart`, and `resumable` (initiate, chunks by Content-Range, cancel). */
export async function upload(
  st: GcsStore,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  bucket: string,
): Promise<void> {
  const { bucketOf, store, objectView, uploads } = st;
  const type = url.searchParams.get("uploadType");
  bucketOf(bucket);
  if (type === "media") {
    const name = url.searchParams.get("name");
    if (!name) throw new GcsError(400, "name is required");
    const o = store(bucket, name, await body(req), String(req.headers["content-type"] ?? ""), {});
    return json(res, 200, objectView(o));
  }
  if (type === "multipart") {
    const raw = await body(req);
    const boundary = /boundary=("?)([^";]+)\1/.exec(String(req.headers["content-type"]))?.[2];
    if (!boundary) throw new GcsError(400, "multipart upload without boundary");
    const parts = raw.toString("latin1").split(`--${boundary}`).slice(1, -1);
    const parse = (p: string) => {
      const i = p.indexOf("\r\n\r\n");
      return { head: p.slice(0, i), body: Buffer.from(p.slice(i + 4, p.length - 2), "latin1") };
    };
    const meta = JSON.parse(parse(parts[0]!).body.toString("utf8")) as {
      name?: string;
      contentType?: string;
      metadata?: Record<string, string>;
    };
    const media = parse(parts[1]!);
    const name = meta.name ?? url.searchParams.get("name");
    if (!name) throw new GcsError(400, "name is required");
    const ct = /content-type:\s*([^\r\n]+)/i.exec(media.head)?.[1] ?? meta.contentType ?? "";
    const o = store(bucket, name, media.body, meta.contentType ?? ct, meta.metadata ?? {});
    return json(res, 200, objectView(o));
  }
  if (type === "resumable") {
    const uploadId = url.searchParams.get("upload_id");
    if (!uploadId) {
      const text = (await body(req)).toString("utf8");
      const meta = (text ? JSON.parse(text) : {}) as {
        name?: string;
        contentType?: string;
        metadata?: Record<string, string>;
      };
      const name = meta.name ?? url.searchParams.get("name");
      if (!name) throw new GcsError(400, "name is required");
      const id = randomBytes(12).toString("hex");
      uploads.set(id, {
        bucket,
        name,
        contentType: meta.contentType ?? String(req.headers["x-upload-content-type"] ?? ""),
        metadata: meta.metadata ?? {},
        chunks: [],
        size: 0,
      });
      const location = `${st.endpoint}${url.pathname}?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
      res.writeHead(200, { location, "x-guploader-uploadid": id, "content-length": "0" }).end();
      return;
    }
    const u = uploads.get(uploadId);
    if (!u) throw new GcsError(404, "no such upload");
    if (req.method === "DELETE") {
      uploads.delete(uploadId);
      res.writeHead(499).end();
      return;
    }
    const chunk = await body(req);
    const range = String(req.headers["content-range"] ?? "");
    const m = /^bytes (\*|(\d+)-(\d+))\/(\*|\d+)$/.exec(range);
    let total: number | null = null;
    if (m) {
      if (m[2] !== undefined && Number(m[2]) !== u.size) {
        // A retried chunk: keep what we have, tell the client where we are.
        return incomplete(req, res, u.size);
      }
      if (m[4] !== "*") total = Number(m[4]);
    } else if (!range || /^bytes \d+-\*\/\*$/.test(range)) {
      // No range, or `bytes N-*/*`: one streamed request that finalises the upload.
      total = u.size + chunk.length;
    }
    if (chunk.length) {
      u.chunks.push(chunk);
      u.size += chunk.length;
    }
    if (total !== null && u.size >= total) {
      uploads.delete(uploadId);
      const o = store(u.bucket, u.name, Buffer.concat(u.chunks), u.contentType, u.metadata);
      return json(res, 200, objectView(o));
    }
    return incomplete(req, res, u.size);
  }
  throw new GcsError(400, `unsupported uploadType ${type}`);
}

/**
 * XML API multipart uploads (signed requests): `POST ?uploads` initiates (metadata and content type are set
 * here), `PUT ?partNumber=&uploadId=` stores a part (Content-MD5 checked, ETag = the part's MD5),
 * `POST ?uploadId=` completes with the listed parts in ascending order (each but the last at least 5 MiB),
 * `DELETE ?uploadId=` aborts (204). After completion or abort the upload and its parts are gone.
 */
export async function xmlMultipart(
  st: GcsStore,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  bucket: string,
  name: string,
): Promise<void> {
  const { bucketOf, store, multipart } = st;
  const method = req.method ?? "GET";
  bucketOf(bucket);
  if (url.searchParams.has("uploads") && method === "POST") {
    await body(req);
    const id = randomBytes(24).toString("base64url");
    multipart.set(id, {
      bucket,
      name,
      contentType: String(req.headers["content-type"] ?? "application/octet-stream"),
      metadata: Object.fromEntries(
        Object.entries(req.headers)
          .filter(([k]) => k.startsWith("x-goog-meta-"))
          .map(([k, v]) => [k.slice(12), String(v)]),
      ),
      parts: new Map(),
    });
    return xml(
      res,
      200,
      `<InitiateMultipartUploadResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><Bucket>${bucket}</Bucket><Key>${name}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
    );
  }
  const id = url.searchParams.get("uploadId") ?? "";
  const u = multipart.get(id);
  if (!u || u.bucket !== bucket || u.name !== name) {
    await body(req);
    return xmlError(res, 404, "NoSuchUpload", "The requested upload was not found.");
  }
  if (method === "PUT") {
    const n = Number(url.searchParams.get("partNumber"));
    const data = await body(req);
    if (!Number.isInteger(n) || n < 1 || n > 10000)
      return xmlError(res, 400, "InvalidArgument", "partNumber must be an integer between 1 and 10000");
    const md5 = createHash("md5").update(data);
    const digest = md5.digest();
    const sent = req.headers["content-md5"];
    if (sent && sent !== digest.toString("base64"))
      return xmlError(
        res,
        400,
        "BadDigest",
        "The Content-MD5 you specified did not match what was received.",
      );
    const etag = `"${digest.toString("hex")}"`;
    u.parts.set(n, { data, etag });
    res.writeHead(200, { etag, "content-length": "0" }).end();
    return;
  }
  if (method === "DELETE") {
    await body(req);
    multipart.delete(id);
    res.writeHead(204).end();
    return;
  }
  if (method === "POST") {
    const text = (await body(req)).toString("utf8");
    const listed = [
      ...text.matchAll(/<Part>\s*<PartNumber>(\d+)<\/PartNumber>\s*<ETag>([^<]*)<\/ETag>\s*<\/Part>/g),
    ].map((m) => ({ n: Number(m[1]), etag: m[2]!.replace(/&quot;/g, '"') }));
    if (listed.length === 0)
      return xmlError(res, 400, "MalformedXML", "The XML you provided was not well-formed.");
    for (let i = 0; i < listed.length; i++) {
      const l = listed[i]!;
      if (i > 0 && l.n <= listed[i - 1]!.n)
        return xmlError(res, 400, "InvalidPartOrder", "The list of parts was not in ascending order.");
      const part = u.parts.get(l.n);
      if (!part || part.etag.replace(/"/g, "") !== l.etag.replace(/"/g, ""))
        return xmlError(res, 400, "InvalidPart", `Part ${l.n} was not found or its ETag does not match.`);
      if (i < listed.length - 1 && part.data.length < 5 * 1024 * 1024)
        return xmlError(res, 400, "EntityTooSmall", `Part ${l.n} is smaller than the minimum of 5 MiB.`);
    }
    multipart.delete(id);
    const o = store(
      u.bucket,
      u.name,
      Buffer.concat(listed.map((l) => u.parts.get(l.n)!.data)),
      u.contentType,
      u.metadata,
    );
    o.composite = true;
    return xml(
      res,
      200,
      `<CompleteMultipartUploadResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><Location>${st.endpoint}/${bucket}/${encodeURIComponent(name)}</Location><Bucket>${bucket}</Bucket><Key>${name}</Key><ETag>"C${o.generation}"</ETag></CompleteMultipartUploadResult>`,
    );
  }
  await body(req);
  return xmlError(res, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
}
