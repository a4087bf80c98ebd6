import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFaultSwitch, type FaultSwitch, serveWithFaults } from "../fault/faults.js";
import { body, json, sendMedia } from "./gcs-http.js";
import { verifySigned } from "./gcs-signed-url.js";
import { createGcsStore, GcsError, type GcsObject } from "./gcs-store.js";
import { upload, xmlMultipart } from "./gcs-uploads.js";

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
  const st = createGcsStore();
  const { buckets, uploads, multipart, bucketOf, objectOf, store, objectView } = st;
  const faults = createFaultSwitch((status) =>
    JSON.stringify({
      error: {
        code: status,
        message: status === 429 ? "rate limited" : "backend error",
        errors: [{ reason: "backendError" }],
      },
    }),
  );

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
      verifySigned(req, url, { clientEmail, publicKey });
      const [, bucket, ...rest] = path.split("/");
      const name = decodeURIComponent(rest.join("/"));
      if (url.searchParams.has("uploads") || url.searchParams.has("uploadId"))
        return xmlMultipart(st, req, res, url, bucket!, name);
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
    if (upload_) return upload(st, req, res, url, bucket);
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

  const server = createServer(
    serveWithFaults(faults, route, (error, res) => {
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
    }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  st.endpoint = endpoint;
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
