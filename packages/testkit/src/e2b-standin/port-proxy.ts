import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";

/**
 * E2B's edge proxy for `getHost(port)` (`<port>-<sandboxId>.<domain>`): the request goes on to that port inside
 * the sandbox, reached at `target` (what the backend session's `exposePort` answers). Nothing listening there is
 * E2B's 502 "The sandbox is running but port is not open" (`shared/pkg/proxy/template/port_closed.go`).
 */
export function proxyToPort(
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
  sandboxId: string,
  port: number,
): Promise<void> {
  const to = new URL(target);
  return new Promise<void>((resolve) => {
    const upstream = httpRequest(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `${to.hostname}:${to.port}` },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on("end", resolve);
        answer.on("error", () => {
          res.destroy();
          resolve();
        });
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) {
        const body = JSON.stringify({
          sandboxId,
          message: "The sandbox is running but port is not open",
          port,
          code: 502,
        });
        res.writeHead(502, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
        res.end(body);
      } else res.destroy();
      resolve();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
}
