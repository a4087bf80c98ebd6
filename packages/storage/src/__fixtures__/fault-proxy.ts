import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A loopback HTTP proxy in front of a store for the export tests: it records every request, follows the
 * multipart uploads it sees (S3/GCS `?uploads` → UploadId, completed with `POST ?uploadId=`, aborted with
 * `DELETE ?uploadId=`), and injects faults into matching requests: an HTTP status instead of forwarding, or
 * a connection reset after part of the body was read.
 */
export interface FaultProxy {
  endpoint: string;
  seen: string[];
  /** The User-Agent of each request in `seen`, at the same index. */
  agents: string[];
  /** Upload ids initiated and neither completed nor aborted (an abort request counts, whatever the answer). */
  openUploads(): string[];
  fail(spec: { match: RegExp; status?: number; reset?: boolean; times?: number; after?: number }): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const to = new URL(target);
  const seen: string[] = [];
  const agents: string[] = [];
  const open = new Set<string>();
  const faults: { match: RegExp; status?: number; reset?: boolean; left: number; skip: number }[] = [];
  const server: Server = createServer((req, res) => {
    const line = `${req.method} ${req.url}`;
    seen.push(line);
    agents.push(req.headers["user-agent"] ?? "");
    const f = faults.find((x) => x.left > 0 && x.match.test(line));
    if (f && f.skip > 0) f.skip -= 1;
    else if (f) {
      f.left -= 1;
      if (f.reset) {
        // Read some of the body first: the client is mid-upload when the connection goes.
        let got = 0;
        req.on("data", (c: Buffer) => {
          got += c.length;
          if (got > 64 * 1024) req.socket.destroy();
        });
        req.on("end", () => req.socket.destroy());
        return;
      }
      req.resume();
      req.on("end", () =>
        res
          .writeHead(f.status ?? 500, { "content-type": "application/xml" })
          .end("<Error><Code>InternalError</Code></Error>"),
      );
      return;
    }
    const url = new URL(req.url ?? "/", "http://x");
    const uploadId = url.searchParams.get("uploadId");
    const up = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        const ok = (r.statusCode ?? 500) < 300;
        if (req.method === "POST" && url.searchParams.has("uploads") && ok) {
          const chunks: Buffer[] = [];
          r.on("data", (c: Buffer) => chunks.push(c));
          r.on("end", () => {
            const body = Buffer.concat(chunks);
            const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString())?.[1];
            if (id) open.add(id);
            res.writeHead(r.statusCode ?? 502, r.headers).end(body);
          });
          return;
        }
        // s3rver answers AbortMultipartUpload 405 (not implemented): the abort request is what is checked.
        if (uploadId && (req.method === "DELETE" || (req.method === "POST" && ok))) open.delete(uploadId);
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    agents,
    openUploads: () => [...open],
    fail: (spec) => faults.push({ ...spec, left: spec.times ?? 1, skip: spec.after ?? 0 }),
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
