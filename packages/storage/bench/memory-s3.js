// A bench-only S3 endpoint on 127.0.0.1 that models how a real store costs: bytes are received and
// MD5-checked (ETag = MD5, Content-MD5 refused when it differs, as S3 does), kept in memory, and completing a
// multipart upload is metadata only (S3 does not copy the parts into a new object on the client's time; s3rver
// re-reads, re-hashes and re-writes every byte, which makes any multipart uploader look slow). Signatures are
// not checked and objects cannot be read back (no GET). Enough of the REST/XML protocol for PutObject,
// HeadObject, the multipart calls and lib-storage's Upload.
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";

export async function startMemoryS3() {
  const objects = new Map();
  const uploads = new Map();
  const xml = (res, status, body, headers = {}) => {
    const text = `<?xml version="1.0" encoding="UTF-8"?>${body}`;
    res.writeHead(status, {
      "content-type": "application/xml",
      "content-length": Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };
  const error = (res, status, code) => xml(res, status, `<Error><Code>${code}</Code></Error>`);
  /** Reads a body, hashing it as it arrives; only its size and MD5 are kept (the bytes are not needed). */
  const receive = (req) =>
    new Promise((resolve, reject) => {
      const md5 = createHash("md5");
      let size = 0;
      req.on("data", (c) => {
        md5.update(c);
        size += c.length;
      });
      req.on("end", () => resolve({ size, md5: md5.digest() }));
      req.on("error", reject);
    });
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const key = decodeURIComponent(url.pathname);
    const uploadId = url.searchParams.get("uploadId");
    try {
      if (req.method === "POST" && url.searchParams.has("uploads")) {
        req.resume();
        const id = randomBytes(12).toString("hex");
        uploads.set(id, { key, parts: new Map(), meta: req.headers });
        return xml(
          res,
          200,
          `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>${key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      if (uploadId) {
        const u = uploads.get(uploadId);
        if (!u) {
          req.resume();
          return error(res, 404, "NoSuchUpload");
        }
        if (req.method === "PUT") {
          const b = await receive(req);
          const sent = req.headers["content-md5"];
          if (sent && sent !== b.md5.toString("base64")) return error(res, 400, "BadDigest");
          u.parts.set(Number(url.searchParams.get("partNumber")), b);
          res.writeHead(200, { etag: `"${b.md5.toString("hex")}"`, "content-length": "0" }).end();
          return;
        }
        if (req.method === "DELETE") {
          req.resume();
          uploads.delete(uploadId);
          res.writeHead(204).end();
          return;
        }
        const text = await new Promise((r) => {
          let s = "";
          req.on("data", (c) => (s += c));
          req.on("end", () => r(s));
        });
        const listed = [...text.matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => Number(m[1]));
        const parts = listed.map((n) => u.parts.get(n));
        if (parts.some((p) => !p)) return error(res, 400, "InvalidPart");
        const md5 = createHash("md5");
        for (const p of parts) md5.update(p.md5);
        const etag = `"${md5.digest("hex")}-${parts.length}"`;
        objects.set(key, { size: parts.reduce((n, p) => n + p.size, 0), etag, meta: u.meta });
        uploads.delete(uploadId);
        return xml(
          res,
          200,
          `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>${key}</Key><ETag>${etag}</ETag></CompleteMultipartUploadResult>`,
        );
      }
      if (req.method === "PUT") {
        const b = await receive(req);
        const sent = req.headers["content-md5"];
        if (sent && sent !== b.md5.toString("base64")) return error(res, 400, "BadDigest");
        const etag = `"${b.md5.toString("hex")}"`;
        objects.set(key, { size: b.size, etag, meta: req.headers });
        res.writeHead(200, { etag, "content-length": "0" }).end();
        return;
      }
      if (req.method === "HEAD") {
        req.resume();
        const o = objects.get(key);
        if (!o) return error(res, 404, "NoSuchKey");
        const meta = Object.fromEntries(Object.entries(o.meta).filter(([k]) => k.startsWith("x-amz-meta-")));
        res.writeHead(200, { "content-length": String(o.size), etag: o.etag, ...meta }).end();
        return;
      }
      if (req.method === "DELETE") {
        req.resume();
        objects.delete(key);
        res.writeHead(204).end();
        return;
      }
      req.resume();
      return error(res, 405, "MethodNotAllowed");
    } catch {
      if (!res.headersSent) error(res, 500, "InternalError");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
