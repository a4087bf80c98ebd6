import { createHash, createVerify, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";
import { crc32cBase64 } from "./crc32c.js";

/**
 * A stand-in of the Google Cloud Storage JSON API (and V4-signed XML API requests) on 127.0.0.1, enough for
 * the unmodified `@google-cloud/storage` SDK and rclone: buckets, objects (list with prefix/delimiter/paging,
 * metadata, media download with Range, patch, delete), media/multipart/resumable uploads, `x-goog-hash`
 * crc32c+md5, and V4 signed URLs verified against a service-account key the stand-in generates.
 */
export interface GcsStandIn {
  endpoint: string;
  port: number;
  projectId: string;
  /** A service-account key (JSON object) whose public half the stand-in trusts. */
  serviceAccountKey: Record<string, string>;
  keyFilename: string;
  createBucket(name: string): void;
  /** Every object as `bucket/name` (for checks that nothing was left). */
  objectNames(): string[];
  /** Puts an object directly (test setup). */
  putObject(bucket: string, name: string, data: Buffer | string, contentType?: string): void;
  /** Names of unfinished resumable and XML multipart uploads (leak counting). */
  pendingUploads(): string[];
  faults: FaultSwitch;
  stop(): Promise<void>;
}

interface GcsObject {
  bucket: string;
  name: string;
  data: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  generation: string;
  updated: string;
  /** Assembled by an XML multipart upload: a CRC32C but no MD5, and an ETag not based on one. */
  composite?: boolean;
}

/** An XML API multipart upload in progress (docs: cloud.google.com/storage/docs/multipart-uploads). */
interface XmlMultipartUpload {
  bucket: string;
  name: string;
  contentType: string;
  metadata: Record<string, string>;
  parts: Map<number, { data: Buffer; etag: string }>;
}

class GcsError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** RFC 3986 strict encoding, as the SDK's signer uses. */
const strict = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export async function startGcsStandIn(opts: { projectId?: string } = {}): Promise<GcsStandIn> {
  const projectId = opts.projectId ?? "roder-test";
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const clientEmail = `standin@${projectId}.iam.gserviceaccount.com`;
  const serviceAccountKey = {
    type: "service_account",
    project_id: projectId,
    private_key_id: randomBytes(8).toString("hex"),
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: clientEmail,
    client_id: "1",
    token_uri: "",
  };
  const dir = mkdtempSync(join(tmpdir(), "roder-gcs-"));
  const keyFilename = join(dir, "key.json");
  writeFileSync(keyFilename, JSON.stringify(serviceAccountKey), { mode: 0o600 });
  const buckets = new Map<string, Map<string, GcsObject>>();
  const uploads = new Map<
    string,
    {
      bucket: string;
      name: string;
      contentType: string;
      metadata: Record<string, string>;
      chunks: Buffer[];
      size: number;
    }
  >();
  const multipart = new Map<string, XmlMultipartUpload>();
  const faults = createFaultSwitch((status) =>
    JSON.stringify({
      error: {
        code: status,
        message: status === 429 ? "rate limited" : "backend error",
        errors: [{ reason: "backendError" }],
      },
    }),
  );
  let endpoint = "";
  let generation = Date.now() * 1000;

  const objectView = (o: GcsObject) => {
    const md5 = createHash("md5").update(o.data).digest("base64");
    const enc = encodeURIComponent(o.name);
    return {
      kind: "storage#object",
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${endpoint}/storage/v1/b/${o.bucket}/o/${enc}`,
      mediaLink: `${endpoint}/download/storage/v1/b/${o.bucket}/o/${enc}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: o.generation,
      metageneration: "1",
      contentType: o.contentType,
      storageClass: "STANDARD",
      size: String(o.data.length),
      ...(o.composite ? {} : { md5Hash: md5 }),
      crc32c: crc32cBase64(o.data),
      etag: o.composite ? `C${o.generation}` : md5,
      timeCreated: o.updated,
      updated: o.updated,
      ...(Object.keys(o.metadata).length ? { metadata: o.metadata } : {}),
    };
  };
  const bucketOf = (name: string) => {
    const b = buckets.get(name);
    if (!b) throw new GcsError(404, `The specified bucket does not exist: ${name}`);
    return b;
  };
  const objectOf = (bucket: string, name: string) => {
    const o = bucketOf(bucket).get(name);
    if (!o) throw new GcsError(404, `No such object: ${bucket}/${name}`);
    return o;
  };
  const store = (
    bucket: string,
    name: string,
    data: Buffer,
    contentType: string,
    metadata: Record<string, string>,
  ) => {
    const o: GcsObject = {
      bucket,
      name,
      data,
      contentType: contentType || "application/octet-stream",
      metadata,
      generation: String(++generation),
      updated: new Date().toISOString(),
    };
    bucketOf(bucket).set(name, o);
    return o;
  };
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res
      .writeHead(status, {
        "content-type": "application/json; charset=UTF-8",
        "content-length": Buffer.byteLength(text),
        ...headers,
      })
      .end(text);
  };
  async function body(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  function sendMedia(req: IncomingMessage, res: ServerResponse, o: GcsObject) {
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

  /** Checks a V4 signed XML-API request (GOOG4-RSA-SHA256) against the service account's public key. */
  function verifySigned(req: IncomingMessage, url: URL): void {
    const q = Object.fromEntries(url.searchParams);
    const signature = q["X-Goog-Signature"];
    if (!signature || q["X-Goog-Algorithm"] !== "GOOG4-RSA-SHA256")
      throw new GcsError(403, "missing or unsupported signature");
    const date = q["X-Goog-Date"]!;
    const expires = Number(q["X-Goog-Expires"]);
    const signedAt = Date.parse(
      `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
    );
    if (!(signedAt <= Date.now() + 60_000) || Date.now() > signedAt + expires * 1000)
      throw new GcsError(400, "ExpiredToken: the signed URL has expired");
    const credential = q["X-Goog-Credential"] ?? "";
    if (!credential.startsWith(`${clientEmail}/`)) throw new GcsError(403, "unknown signer");
    const signedHeaders = (q["X-Goog-SignedHeaders"] ?? "").split(";");
    const headerValue = (h: string) =>
      h === "host" ? String(req.headers.host ?? "").replace(/:\d+$/, "") : String(req.headers[h] ?? "");
    const canonicalHeaders = signedHeaders
      .map(
        (h) =>
          `${h}:${headerValue(h)
            .trim()
            .replace(/\s{2,}/g, " ")}\n`,
      )
      .join("");
    const canonicalQuery = Object.entries(q)
      .filter(([k]) => k !== "X-Goog-Signature")
      .map(([k, v]) => [strict(k), strict(v)] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join("&");
    const canonicalRequest = [
      req.method,
      url.pathname,
      canonicalQuery,
      canonicalHeaders,
      signedHeaders.join(";"),
      "UNSIGNED-PAYLOAD",
    ].join("\n");
    const scope = credential.slice(clientEmail.length + 1);
    const toSign = [
      "GOOG4-RSA-SHA256",
      date,
      scope,
      createHash("sha256").update(canonicalRequest).digest("hex"),
    ].join("\n");
    const ok = createVerify("RSA-SHA256").update(toSign).verify(publicKey, Buffer.from(signature, "hex"));
    if (!ok) throw new GcsError(403, "SignatureDoesNotMatch: the request signature does not match");
  }

  async function upload(req: IncomingMessage, res: ServerResponse, url: URL, bucket: string): Promise<void> {
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
        const location = `${endpoint}${url.pathname}?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
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
  function xml(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
    const text = `<?xml version='1.0' encoding='UTF-8'?>${body}`;
    res
      .writeHead(status, {
        "content-type": "application/xml; charset=UTF-8",
        "content-length": Buffer.byteLength(text),
        ...headers,
      })
      .end(text);
  }
  const xmlError = (res: ServerResponse, status: number, code: string, message: string) =>
    xml(res, status, `<Error><Code>${code}</Code><Message>${message}</Message></Error>`);

  /**
   * XML API multipart uploads (signed requests): `POST ?uploads` initiates (metadata and content type are set
   * here), `PUT ?partNumber=&uploadId=` stores a part (Content-MD5 checked, ETag = the part's MD5),
   * `POST ?uploadId=` completes with the listed parts in ascending order (each but the last at least 5 MiB),
   * `DELETE ?uploadId=` aborts (204). After completion or abort the upload and its parts are gone.
   */
  async function xmlMultipart(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    bucket: string,
    name: string,
  ): Promise<void> {
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
        `<CompleteMultipartUploadResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><Location>${endpoint}/${bucket}/${encodeURIComponent(name)}</Location><Bucket>${bucket}</Bucket><Key>${name}</Key><ETag>"C${o.generation}"</ETag></CompleteMultipartUploadResult>`,
      );
    }
    await body(req);
    return xmlError(
      res,
      405,
      "MethodNotAllowed",
      "The specified method is not allowed against this resource.",
    );
  }

  function incomplete(req: IncomingMessage, res: ServerResponse, size: number) {
    const headers: Record<string, string> = size > 0 ? { range: `bytes=0-${size - 1}` } : {};
    if (req.headers["x-guploader-no-308"] === "yes")
      res.writeHead(200, { ...headers, "x-http-status-code-override": "308", "content-length": "0" }).end();
    else res.writeHead(308, { ...headers, "content-length": "0" }).end();
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const method = req.method ?? "GET";
    let path = url.pathname;
    if (path === "/token" && method === "POST") {
      // OAuth2 JWT-bearer exchange for service accounts (rclone, the SDK without a custom endpoint).
      await body(req);
      return json(res, 200, {
        access_token: `ya29.standin-${randomBytes(8).toString("hex")}`,
        expires_in: 3600,
        token_type: "Bearer",
      });
    }
    if (url.searchParams.has("X-Goog-Signature")) {
      verifySigned(req, url);
      const [, bucket, ...rest] = path.split("/");
      const name = decodeURIComponent(rest.join("/"));
      if (url.searchParams.has("uploads") || url.searchParams.has("uploadId"))
        return xmlMultipart(req, res, url, bucket!, name);
      if (method === "PUT") {
        const data = await body(req);
        const md5 = req.headers["content-md5"];
        if (md5 && md5 !== createHash("md5").update(data).digest("base64"))
          throw new GcsError(400, "BadDigest: Content-MD5 does not match");
        const meta = Object.fromEntries(
          Object.entries(req.headers)
            .filter(([k]) => k.startsWith("x-goog-meta-"))
            .map(([k, v]) => [k.slice(12), String(v)]),
        );
        store(bucket!, name, data, String(req.headers["content-type"] ?? ""), meta);
        res.writeHead(200, { "content-length": "0" }).end();
        return;
      }
      if (method === "GET") return sendMedia(req, res, objectOf(bucket!, name));
      throw new GcsError(405, "method not allowed");
    }
    let upload_ = false;
    for (const prefix of ["/upload/storage/v1", "/download/storage/v1", "/storage/v1"]) {
      if (path.startsWith(prefix)) {
        upload_ = prefix === "/upload/storage/v1";
        path = path.slice(prefix.length);
        break;
      }
    }
    const parts = path.split("/").filter(Boolean);
    if (parts[0] !== "b") throw new GcsError(404, "Not Found");
    if (parts.length === 1) {
      if (method === "POST") {
        const meta = JSON.parse((await body(req)).toString() || "{}") as { name?: string };
        if (!meta.name) throw new GcsError(400, "bucket name required");
        if (buckets.has(meta.name)) throw new GcsError(409, "You already own this bucket");
        buckets.set(meta.name, new Map());
        return json(res, 200, {
          kind: "storage#bucket",
          name: meta.name,
          id: meta.name,
          projectNumber: "1",
          location: "US",
          storageClass: "STANDARD",
        });
      }
      if (method === "GET")
        return json(res, 200, {
          kind: "storage#buckets",
          items: [...buckets.keys()].map((name) => ({ kind: "storage#bucket", name, id: name })),
        });
    }
    const bucket = parts[1]!;
    if (parts.length === 2) {
      if (method === "GET") {
        bucketOf(bucket);
        return json(res, 200, {
          kind: "storage#bucket",
          name: bucket,
          id: bucket,
          location: "US",
          storageClass: "STANDARD",
          iamConfiguration: { uniformBucketLevelAccess: { enabled: true } },
        });
      }
      if (method === "DELETE") {
        if (bucketOf(bucket).size > 0) throw new GcsError(409, "The bucket you tried to delete is not empty");
        buckets.delete(bucket);
        res.writeHead(204).end();
        return;
      }
    }
    if (parts[2] !== "o") throw new GcsError(404, "Not Found");
    if (upload_) return upload(req, res, url, bucket);
    if (parts.length === 3 && method === "GET") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const delimiter = url.searchParams.get("delimiter") ?? "";
      const max = Number(url.searchParams.get("maxResults") ?? "1000");
      const token = url.searchParams.get("pageToken") ?? "";
      const names = [...bucketOf(bucket).keys()].filter((n) => n.startsWith(prefix)).sort();
      const items: GcsObject[] = [];
      const prefixes = new Set<string>();
      const entries: Array<[string, GcsObject | null]> = [];
      for (const n of names) {
        const rest = n.slice(prefix.length);
        const cut = delimiter ? rest.indexOf(delimiter) : -1;
        if (cut >= 0) {
          const p = prefix + rest.slice(0, cut + delimiter.length);
          if (!prefixes.has(p)) {
            prefixes.add(p);
            entries.push([p, null]);
          }
        } else entries.push([n, bucketOf(bucket).get(n)!]);
      }
      const start = token ? entries.findIndex(([k]) => k > Buffer.from(token, "base64").toString()) : 0;
      const page = start < 0 ? [] : entries.slice(start, start + max);
      const more = start >= 0 && start + max < entries.length;
      for (const [, o] of page) if (o) items.push(o);
      return json(res, 200, {
        kind: "storage#objects",
        items: items.map(objectView),
        prefixes: page.filter(([, o]) => !o).map(([k]) => k),
        ...(more ? { nextPageToken: Buffer.from(page[page.length - 1]![0]).toString("base64") } : {}),
      });
    }
    const name = decodeURIComponent(parts.slice(3).join("/"));
    if (method === "GET") {
      const o = objectOf(bucket, name);
      if (url.searchParams.get("alt") === "media") return sendMedia(req, res, o);
      return json(res, 200, objectView(o));
    }
    if (method === "DELETE") {
      objectOf(bucket, name);
      bucketOf(bucket).delete(name);
      res.writeHead(204).end();
      return;
    }
    if (method === "PATCH" || method === "PUT") {
      const o = objectOf(bucket, name);
      const meta = JSON.parse((await body(req)).toString() || "{}") as {
        contentType?: string;
        metadata?: Record<string, string | null>;
      };
      if (meta.contentType) o.contentType = meta.contentType;
      for (const [k, v] of Object.entries(meta.metadata ?? {})) {
        if (v === null) delete o.metadata[k];
        else o.metadata[k] = v;
      }
      return json(res, 200, objectView(o));
    }
    throw new GcsError(404, "Not Found");
  }

  const server = createServer((req, res) => {
    void (async () => {
      if (await faults.apply(req, res)) return;
      try {
        await route(req, res);
      } catch (error) {
        req.resume();
        const e = error instanceof GcsError ? error : new GcsError(500, "internal error");
        if (!res.headersSent)
          json(res, e.status, {
            error: {
              code: e.status,
              message: e.message,
              errors: [
                { message: e.message, domain: "global", reason: e.status === 404 ? "notFound" : "invalid" },
              ],
            },
          });
        else res.end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  endpoint = `http://127.0.0.1:${port}`;
  serviceAccountKey.token_uri = `${endpoint}/token`;
  writeFileSync(keyFilename, JSON.stringify(serviceAccountKey), { mode: 0o600 });
  return {
    endpoint,
    port,
    projectId,
    serviceAccountKey,
    keyFilename,
    createBucket(name) {
      if (!buckets.has(name)) buckets.set(name, new Map());
    },
    objectNames: () => [...buckets.entries()].flatMap(([b, m]) => [...m.keys()].map((n) => `${b}/${n}`)),
    putObject(bucket, name, data, contentType = "application/octet-stream") {
      if (!buckets.has(bucket)) buckets.set(bucket, new Map());
      store(bucket, name, Buffer.from(data), contentType, {});
    },
    pendingUploads: () => [...uploads.values(), ...multipart.values()].map((u) => `${u.bucket}/${u.name}`),
    faults,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
