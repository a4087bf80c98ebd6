import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A minimal GCS server for this package's export tests until the testkit's GCS stand-in lands: the XML API's
 * signed PUT/GET (`/{bucket}/{object}`; the signature is required but not verified), the JSON API's object
 * metadata GET/DELETE and list, and resumable uploads (`bytes a-b/*`, `bytes a-b/N`, `bytes 0-*\/*`).
 */
export interface GcsMini {
  endpoint: string;
  objects: Map<string, { data: Buffer; contentType: string; metadata: Record<string, string> }>;
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
    };
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url!, "http://x");
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(payload === undefined ? "" : JSON.stringify(payload));
    };
    try {
      const api = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)\/o(?:\/(.+))?$/);
      if (api) {
        const [, bucket, obj] = api;
        if (!obj) {
          const prefix = url.searchParams.get("prefix") ?? "";
          const items = [...objects.keys()]
            .filter((k) => k.startsWith(`${bucket}/${prefix}`))
            .map((k) => json(k));
          return send(200, { kind: "storage#objects", items });
        }
        const key = `${bucket}/${decodeURIComponent(obj)}`;
        if (!objects.has(key)) return send(404, { error: { code: 404, message: "No such object" } });
        if (req.method === "DELETE") {
          objects.delete(key);
          return send(204);
        }
        return send(200, json(key));
      }
      const up = url.pathname.match(/^\/upload\/storage\/v1\/b\/([^/]+)\/o$/);
      if (up) {
        const id = url.searchParams.get("upload_id");
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
          });
          uploads.delete(id!);
          return send(200, json(u.key));
        }
        return send(308, undefined, received ? { range: `bytes=0-${received - 1}` } : {});
      }
      // XML API with a signed URL.
      if (!url.searchParams.get("X-Goog-Signature")) return send(403, { error: "signature required" });
      const key = decodeURIComponent(url.pathname.slice(1));
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
        });
        res.writeHead(200);
        return res.end();
      }
      const o = objects.get(key);
      if (!o) return send(404, {});
      res.writeHead(200, { "content-type": o.contentType, "content-length": o.data.length });
      return res.end(o.data);
    } catch (e) {
      send(500, { error: String(e) });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    objects,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
