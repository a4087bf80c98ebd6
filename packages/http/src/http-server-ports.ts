import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { redactSecrets } from "@roder/runner-contract";

/** Request headers that belong to one hop, or to this server (its bearer credential), never to the app. */
const DROP_REQUEST = new Set([
  "authorization",
  "proxy-authorization",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);
const DROP_RESPONSE = new Set(["connection", "keep-alive", "transfer-encoding", "trailer", "upgrade"]);

function jsonError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Forwards one request to a port of a session (the URL the backend's `exposePort` gave, reachable from the
 * server), streaming both ways with backpressure. The server's bearer credential is not forwarded. Resolves
 * when the answer is sent.
 */
export async function proxyToPort(args: {
  req: IncomingMessage;
  res: ServerResponse;
  /** The backend's URL for the port (null: the backend has none). */
  target: () => Promise<string | null>;
  /** Path and query for the app, starting with `/`. */
  path: string;
  secrets: readonly string[];
}): Promise<void> {
  const { req, res } = args;
  const backendUrl = await args.target();
  let target: URL;
  try {
    target = new URL(backendUrl ?? "");
    if (target.protocol !== "http:") throw new Error("not http");
  } catch {
    req.resume();
    return jsonError(res, 501, "unsupported_capability", "the backend gives no HTTP address for this port");
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined && !DROP_REQUEST.has(k.toLowerCase())) headers[k] = v;
  headers.host = target.host;
  const prefix = target.pathname.replace(/\/+$/, "");
  await new Promise<void>((resolve) => {
    const upstream = httpRequest(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: `${prefix}${args.path}`,
        headers,
      },
      (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(answer.headers))
          if (v !== undefined && !DROP_RESPONSE.has(k.toLowerCase())) out[k] = v;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
        answer.on("error", () => res.destroy());
        res.on("close", () => {
          answer.destroy();
          resolve();
        });
      },
    );
    upstream.on("error", (error) => {
      jsonError(
        res,
        502,
        "port_unreachable",
        redactSecrets(
          `nothing answers on the session's port (${(error as NodeJS.ErrnoException).code ?? "error"})`,
          args.secrets,
        ),
      );
      resolve();
    });
    res.on("close", () => {
      upstream.destroy();
      resolve();
    });
    req.pipe(upstream);
  });
}
