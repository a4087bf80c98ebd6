import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A minimal GCS server for this package's export tests until the testkit's GCS stand-in lands: the XML API's
 * signed PUT/GET (`/{bucket}/{object}`; the signature is required but not verified), the JSON API's object
 * metadata GET/PATCH/DELETE and list, resumable uploads (`bytes a-b/*`, `bytes a-b/N`, `bytes 0-*\/*`), and
 * XML API multipart uploads through signed URLs (initiate, parts with Content-MD5, complete, abort).
 */
export interface GcsMini {
  endpoint: string;
  objects: Map<
    string,
    { data: Buffer; contentType: string; metadata: Record<string, string>; updated?: string }
  >;
  stop(): Promise<void>;
}

const body = async (req: IncomingMessage) => {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

export async function startGcsMini(): Promise<GcsMini> {
  const objects: GcsMini["objects"] = new Map();
  const uploads = new Map<
    string,
    { key: string; contentType: string; metadata: Record<string, string>; chunks: Buffer[] }
  >();
  const json = (key: string) => {
    const o = objects.get(key)!;
    const i = key.indexOf("/");
    return {
      kind: "storage#object",
      bucket: key.slice(0, i),
      name: key.slice(i + 1),
      size: String(o.data.length),
      contentType: o.contentType,
      metadata: o.metadata,
      md5Hash: createHash("md5").update(o.data).digest("base64"),
      updated: o.updated,
      mediaLink: `${base()}/download/storage/v1/b/${key.slice(0, i)}/o/${encodeURIComponent(key.slice(i + 1))}?alt=media`,
    };
  };
  const multipart = new Map<string, { key: string; contentType: string; parts: Map<number, Buffer> }>();
  let base = () => "";
  const server = createServer(async (req, res) => {
    const media = (key: string) => {
      const o = objects.get(key);
      if (!o) return send(404, { error: { code: 404, message: "No such object" } });
      res.writeHead(200, {
        "content-type": o.contentType,
        "content-length": o.data.length,
        "x-goog-hash": `md5=${createHash("md5").update(o.data).digest("base64")}`,
      });
      return res.end(o.data);
    };
    const url = new URL(req.url!, "http://x");
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(payload === undefined ? "" : JSON.stringify(payload));
    };
    try {
      // OAuth token endpoint for a service account whose JSON names `token_uri: <endpoint>/token` (rclone).
      if (url.pathname === "/token" && req.method === "POST") {
        await body(req);
        return send(200, { access_token: "mini-token", token_type: "Bearer", expires_in: 3600 });
      }
      const api = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)\/o(?:\/(.+))?$/);
      if (api) {
        const [, bucket, obj] = api;
        if (!obj) {
          const prefix = url.searchParams.get("prefix") ?? "";
          const delim = url.searchParams.get("delimiter");
          const items: unknown[] = [];
          const prefixes = new Set<string>();
          for (const k of [...objects.keys()].sort()) {
            if (!k.startsWith(`${bucket}/${prefix}`)) continue;
            const rest = k.slice(bucket!.length + 1 + prefix.length);
            const cut = delim ? rest.indexOf(delim) : -1;
            if (cut >= 0) prefixes.add(prefix + rest.slice(0, cut + 1));
            else items.push(json(k));
          }
          return send(200, { kind: "storage#objects", items, prefixes: [...prefixes] });
        }
        const key = `${bucket}/${decodeURIComponent(obj)}`;
        if (!objects.has(key)) return send(404, { error: { code: 404, message: "No such object" } });
        if (req.method === "DELETE") {
          objects.delete(key);
          return send(204);
        }
        if (req.method === "PATCH") {
          const patch = JSON.parse((await body(req)).toString() || "{}");
          Object.assign(objects.get(key)!.metadata, patch.metadata ?? {});
          return send(200, json(key));
        }
        if (url.searchParams.get("alt") === "media") return media(key);
        return send(200, json(key));
      }
      const dl = url.pathname.match(/^\/download\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/);
      if (dl) return media(`${dl[1]}/${decodeURIComponent(dl[2]!)}`);
      const up = url.pathname.match(/^\/upload\/storage\/v1\/b\/([^/]+)\/o$/);
      if (up) {
        const id = url.searchParams.get("upload_id");
        if (req.method === "POST" && url.searchParams.get("uploadType") === "multipart") {
          const raw = await body(req);
          const boundary = /boundary="?([^";]+)"?/.exec(String(req.headers["content-type"]))![1]!;
          const parts = raw
            .toString("latin1")
            .split(`--${boundary}`)
            .slice(1, -1)
            .map((p) => {
              const at = p.indexOf("\r\n\r\n");
              return Buffer.from(p.slice(at + 4, -2), "latin1");
            });
          const meta = JSON.parse(parts[0]!.toString());
          const key = `${up[1]}/${meta.name ?? url.searchParams.get("name")}`;
          objects.set(key, {
            data: parts[1]!,
            contentType: meta.contentType ?? "application/octet-stream",
            metadata: meta.metadata ?? {},
            updated: new Date().toISOString(),
          });
          return send(200, json(key));
        }
        if (req.method === "POST" && !id) {
          const meta = JSON.parse((await body(req)).toString() || "{}");
          const name = url.searchParams.get("name") ?? meta.name;
          const uid = randomBytes(8).toString("hex");
          uploads.set(uid, {
            key: `${up[1]}/${name}`,
            contentType: meta.contentType ?? "application/octet-stream",
            metadata: meta.metadata ?? {},
            chunks: [],
          });
          const host = req.headers.host;
          return send(
            200,
            {},
            { location: `http://${host}${url.pathname}?uploadType=resumable&upload_id=${uid}` },
          );
        }
        const u = id ? uploads.get(id) : undefined;
        if (!u) return send(404, { error: { code: 404, message: "No such upload" } });
        const data = await body(req);
        if (data.length) u.chunks.push(data);
        const range = String(req.headers["content-range"] ?? "bytes */*");
        const total = range.split("/")[1];
        const received = u.chunks.reduce((n, c) => n + c.length, 0);
        if (
          (total === "*" && /^bytes (\d+-\*|0-\*)\//.test(range)) ||
          (total !== "*" && Number(total) === received)
        ) {
          objects.set(u.key, {
            data: Buffer.concat(u.chunks),
            contentType: u.contentType,
            metadata: u.metadata,
            updated: new Date().toISOString(),
          });
          uploads.delete(id!);
          return send(200, json(u.key));
        }
        const rangeHeader: Record<string, string> = received ? { range: `bytes=0-${received - 1}` } : {};
        // rclone asks for 200 + X-Http-Status-Code-Override instead of a bare 308.
        if (req.headers["x-guploader-no-308"] === "yes")
          return send(200, undefined, { ...rangeHeader, "x-http-status-code-override": "308" });
        return send(308, undefined, rangeHeader);
      }
      // XML API with a signed URL.
      if (!url.searchParams.get("X-Goog-Signature")) return send(403, { error: "signature required" });
      const key = decodeURIComponent(url.pathname.slice(1));
      const xml = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/xml", ...headers });
        return res.end(text);
      };
      if (url.searchParams.has("uploads") && req.method === "POST") {
        await body(req);
        const uid = randomBytes(8).toString("hex");
        const contentType = String(req.headers["content-type"] ?? "application/octet-stream");
        multipart.set(uid, { key, contentType, parts: new Map() });
        return xml(
          200,
          `<InitiateMultipartUploadResult><UploadId>${uid}</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      const uploadId = url.searchParams.get("uploadId");
      if (uploadId) {
        const m = multipart.get(uploadId);
        const data = await body(req);
        if (!m || m.key !== key) return xml(404, "<Error><Code>NoSuchUpload</Code></Error>");
        if (req.method === "PUT") {
          const md5 = createHash("md5").update(data).digest();
          if (req.headers["content-md5"] && req.headers["content-md5"] !== md5.toString("base64"))
            return xml(400, "<Error><Code>BadDigest</Code></Error>");
          m.parts.set(Number(url.searchParams.get("partNumber")), data);
          return xml(200, "", { etag: `"${md5.toString("hex")}"` });
        }
        multipart.delete(uploadId);
        if (req.method === "DELETE") return xml(204, "");
        const listed = [...data.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((x) =>
          Number(x[1]),
        );
        objects.set(key, {
          data: Buffer.concat(listed.map((n) => m.parts.get(n) ?? Buffer.alloc(0))),
          contentType: m.contentType,
          metadata: {},
          updated: new Date().toISOString(),
        });
        return xml(200, "<CompleteMultipartUploadResult></CompleteMultipartUploadResult>");
      }
      if (req.method === "PUT") {
        const data = await body(req);
        const md5 = req.headers["content-md5"];
        if (md5 && md5 !== createHash("md5").update(data).digest("base64")) {
          res.writeHead(400);
          return res.end("<Error><Code>BadDigest</Code></Error>");
        }
        const metadata: Record<string, string> = {};
        for (const [h, v] of Object.entries(req.headers))
          if (h.startsWith("x-goog-meta-")) metadata[h.slice(12)] = String(v);
        objects.set(key, {
          data,
          contentType: String(req.headers["content-type"] ?? "application/octet-stream"),
          metadata,
          updated: new Date().toISOString(),
        });
        res.writeHead(200);
        return res.end();
      }
      return media(key);
    } catch (e) {
      send(500, { error: String(e) });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  base = () => `http://127.0.0.1:${port}`;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    objects,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
